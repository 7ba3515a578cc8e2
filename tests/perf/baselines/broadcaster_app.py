"""Baseline: FastAPI + sse-starlette + encode/broadcaster (one Redis subscription per process).

    BENCH_REDIS_URL=redis://127.0.0.1:6379 uvicorn tests.perf.baselines.broadcaster_app:app

Runs in its own virtualenv (``tests/perf/baselines/.venv-broadcaster``, made by the benchmark):
broadcaster 0.3.1 delivers nothing with redis-py 8.x, so that environment pins redis-py 7.4.1.
Each subscriber gets broadcaster's unbounded ``asyncio.Queue``; a comment frame is sent once the
subscription is registered, so the load tool knows when to publish.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

broadcast = Broadcast(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


app = FastAPI(lifespan=lifespan)


@app.post("/publish/{channel}", status_code=202)
async def publish(channel: str, request: Request) -> JSONResponse:
    body = await request.body()
    if "ndjson" in request.headers.get("content-type", ""):
        lines = [line for line in body.split(b"\n") if line]
        for line in lines:
            await broadcast.publish(channel, line.decode())
        return JSONResponse({"channel": channel, "ids": [str(i) for i in range(len(lines))]}, 202)
    await broadcast.publish(channel, body.decode())
    return JSONResponse({"channel": channel, "id": "0"}, 202)


@app.get("/subscribe/{channel}")
async def subscribe(channel: str) -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        async with broadcast.subscribe(channel) as subscriber:
            yield ServerSentEvent(comment="subscribed")
            async for event in subscriber:
                yield ServerSentEvent(data=event.message)

    return EventSourceResponse(events())
