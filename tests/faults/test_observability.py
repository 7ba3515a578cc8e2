"""Observability: /metrics counts what happened (aggregated over worker processes), and the logs
are one JSON object per line with the request's id - and never a message body or a token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.faults.support import scrape, sse_reader, wait_for
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


async def test_metrics_aggregate_over_workers(redis_server, start_gateway):
    gateway = start_gateway(redis_server.url, workers=2)
    publishes = 12
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(sse_connect(gateway.url + "/subscribe/obs"))
            for _ in range(6)
        ]
        for stream in opened:
            await stream.next_frame()
        for seq in range(publishes):  # a new connection each: spread over the workers
            async with httpx.AsyncClient(timeout=10) as once:
                reply = await once.post(gateway.url + "/publish/obs", json={"seq": seq})
            assert reply.status_code == 202
        for stream in opened:
            got = [e.json()["seq"] for e in await stream.collect(publishes)]
            assert got == list(range(publishes))

        def settled() -> bool:
            metrics = scrape(gateway.url)
            return (
                metrics["sse_connections"] == 6
                and metrics["sse_events_delivered_total"] == 6 * publishes
                and metrics.get("sse_messages_published_total") == publishes
            )

        # Gauges and tallies (deliveries, publishes) are sampled once a second in each worker.
        assert await wait_for(settled, timeout=10)
        # Whichever worker answers a scrape, the totals are the same: they are summed.
        scrapes = [await asyncio.to_thread(scrape, gateway.url) for _ in range(4)]
    for metrics in scrapes:
        assert metrics["sse_messages_published_total"] == publishes
        # Timed at most one a millisecond per worker, like the lag below.
        assert 1 <= metrics["sse_publish_seconds_count"] <= publishes
        assert metrics["sse_streams_opened_total"] == 6
        assert metrics["sse_connections"] == 6
        assert metrics["sse_redis_connected"] == 1
        # Sampled (at most one a millisecond), per worker that had subscribers.
        assert 1 <= metrics["sse_delivery_lag_seconds_count"] <= 2 * publishes
    assert await wait_for(lambda: scrape(gateway.url)["sse_connections"] == 0)


async def test_logs_are_json_lines_with_request_ids_and_no_bodies_or_tokens(
    redis_server, start_gateway, tmp_path
):
    gateway = start_gateway(redis_server.url)
    secret_body = "BODY-SECRET-7f3a"
    token = "TOKEN-SECRET-91c2"
    async with httpx.AsyncClient(timeout=10) as http:
        ok = await http.post(
            gateway.url + "/publish/logs?access_token=" + token,
            json={"secret": secret_body},
            headers={"authorization": f"Bearer {token}", "x-request-id": "req-ok-1"},
        )
        assert ok.status_code == 202 and ok.headers["x-request-id"] == "req-ok-1"
        bad = await http.post(
            gateway.url + "/publish/logs",
            content=b'{"secret": "' + secret_body.encode() + b'", oops',
            headers={"content-type": "application/json", "x-request-id": "req-bad-2"},
        )
        assert bad.status_code == 400 and bad.headers["x-request-id"] == "req-bad-2"
        generated = await http.get(gateway.url + "/readyz", headers={"x-request-id": "bad id!"})
        assert len(generated.headers["x-request-id"]) == 16  # not a sane token: replaced
        async with sse_connect(
            gateway.url + "/subscribe/logs", headers={"x-request-id": "req-stream-3"}
        ) as stream:
            await stream.next_frame()
    # Let the gateway notice the hang-up before SIGTERM would end the stream as "shutdown".
    assert await wait_for(lambda: scrape(gateway.url)["sse_connections"] == 0)
    gateway.stop()

    lines = [json.loads(line) for line in gateway.log_path.read_text().splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    by_id = {line.get("request_id"): line for line in lines if line.get("request_id")}
    assert by_id["req-bad-2"]["msg"].startswith("rejected POST /publish/logs: 400 invalid_json")
    closed = by_id["req-stream-3"]
    assert closed["msg"] == "stream closed" and closed["reason"] == "client"
    text = gateway.log_path.read_text()
    assert secret_body not in text and token not in text


def _worker_pids(supervisor: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                pids.append(int(pid))
    return pids


async def test_a_killed_worker_leaves_the_gauges(redis_server, start_gateway):
    """A worker that dies without cleaning up (OOM kill) must not be counted for ever: its open
    streams would inflate ``sse_connections`` - and the autoscaler that follows it."""
    gateway = start_gateway(redis_server.url, workers=2)
    streams = 20
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(sse_reader(gateway.url + "/subscribe/crash"))
            for _ in range(streams)
        ]
        for stream in opened:
            await stream.next_frame()
        assert await wait_for(lambda: scrape(gateway.url)["sse_connections"] == streams)
        workers = _worker_pids(gateway.proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        await asyncio.sleep(1.0)  # the kernel closes a dead process's sockets at once
        ended = sum(stream.ended.is_set() for stream in opened)
        print(f"killed a worker holding {ended} of {streams} streams")
        assert await wait_for(
            lambda: scrape(gateway.url)["sse_connections"] == streams - ended, timeout=15
        )
