"""Baseline: FastAPI + sse-starlette with one Redis pub/sub subscription per SSE client.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn tests.perf.baselines.per_client_app:app

The pattern most tutorials show: every ``GET /subscribe/{channel}`` opens its own Redis
connection and ``SUBSCRIBE``; ``POST /publish/{channel}`` (JSON, or NDJSON lines) ``PUBLISH``es.
A comment frame is sent once the subscription is live, so the load tool knows when to publish.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import redis.asyncio as redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

app = FastAPI()
# redis-py 8 caps a pool at 100 connections; this pattern needs one per subscriber.
client = redis.Redis.from_url(
    os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), max_connections=100_000
)


@app.post("/publish/{channel}", status_code=202)
async def publish(channel: str, request: Request) -> JSONResponse:
    body = await request.body()
    if "ndjson" in request.headers.get("content-type", ""):
        lines = [line for line in body.split(b"\n") if line]
        async with client.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.publish(channel, line)
            await pipe.execute()
        return JSONResponse({"channel": channel, "ids": [str(i) for i in range(len(lines))]}, 202)
    await client.publish(channel, body)
    return JSONResponse({"channel": channel, "id": "0"}, 202)


@app.get("/subscribe/{channel}")
async def subscribe(channel: str) -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        try:
            yield ServerSentEvent(comment="subscribed")
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield ServerSentEvent(data=message["data"].decode())
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    return EventSourceResponse(events())
