"""NDJSON streams read by ordinary line readers (requests, aiohttp, httpx sync and async) from a
real gateway process: exact delivery, exact resume, gap and keepalive lines, slow consumers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from publisher import AsyncPublisher, HistoryLimits, Publisher
from tests.clients.conftest import FAST
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

NDJSON = {"accept": "application/x-ndjson"}


def _lines(lines: Any, count: int, kinds: tuple[str, ...] = ("message", "gap")) -> list[dict]:
    """The next ``count`` lines of the given kinds (every line must be one JSON object)."""
    out: list[dict] = []
    for raw in lines:
        line = json.loads(raw)
        assert isinstance(line, dict) and "type" in line, raw
        if line["type"] in kinds:
            out.append(line)
            if len(out) == count:
                break
    return out


def test_requests_reader_receives_and_resumes_with_the_header(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    url = f"{shared_gateway.url}/subscribe/nd-req"
    with Publisher(redis_server.url) as publisher:
        with requests.get(url, headers=NDJSON, stream=True, timeout=(5, 10)) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = response.iter_lines()
            opening = _lines(lines, 1, ("open",))[0]
            assert opening["retry"] == 100
            ids = publisher.publish_many("nd-req", [{"n": n} for n in range(10)], event="tick")
            first = _lines(lines, 4)
        assert [line["id"] for line in first] == ids[:4]
        assert first[0] == {
            "type": "message",
            "id": ids[0],
            "channel": "nd-req",
            "event": "tick",
            "data": {"n": 0},
        }
        more = publisher.publish("nd-req", {"n": 10})
        headers = {**NDJSON, "last-event-id": first[-1]["id"]}
        with requests.get(url, headers=headers, stream=True, timeout=(5, 10)) as response:
            rest = _lines(response.iter_lines(), 7)
    assert [line["id"] for line in rest] == [*ids[4:], more]
    assert [line["data"]["n"] for line in rest] == list(range(4, 11))


async def test_aiohttp_reader_receives_and_resumes_with_the_query(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    url = f"{shared_gateway.url}/subscribe/nd-aio"
    async with AsyncPublisher(redis_server.url) as publisher, aiohttp.ClientSession() as http:
        start = await publisher.publish("nd-aio", {"n": -1})
        ids = await publisher.publish_many("nd-aio", [{"n": n} for n in range(20)])
        got: list[dict] = []
        async with http.get(url, params={"lastEventId": start}, headers=NDJSON) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            while len(got) < 8:
                line = json.loads(await response.content.readline())
                if line["type"] == "message":
                    got.append(line)
        params = {"lastEventId": got[-1]["id"]}
        async with http.get(url, params=params, headers=NDJSON) as response:
            while len(got) < 20:
                line = json.loads(await response.content.readline())
                if line["type"] == "message":
                    got.append(line)
    assert [line["id"] for line in got] == ids
    assert [line["data"] for line in got] == [{"n": n} for n in range(20)]


async def test_httpx_readers_resume_a_multi_channel_vector(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    url = f"{shared_gateway.url}/subscribe?channel=nd-va&channel=nd-vb"
    with Publisher(redis_server.url) as publisher:
        with httpx.stream("GET", url, headers=NDJSON, timeout=10) as response:
            lines = response.iter_lines()
            opening = _lines(lines, 1, ("open",))[0]
            a = publisher.publish_many("nd-va", [{"a": n} for n in range(3)])
            b = publisher.publish_many("nd-vb", [{"b": n} for n in range(3)])
            first = _lines(lines, 4)
        assert opening["id"].startswith("nd-va=")
        assert [(line["channel"], line["data"]) for line in first] == [
            ("nd-va", {"a": 0}),
            ("nd-va", {"a": 1}),
            ("nd-va", {"a": 2}),
            ("nd-vb", {"b": 0}),
        ]
        assert first[-1]["id"] == f"nd-vb={b[0]},nd-va={a[2]}"  # own channel first
        headers = {**NDJSON, "last-event-id": first[-1]["id"]}
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            rest: list[dict] = []
            async for raw in response.aiter_lines():
                line = json.loads(raw)
                if line["type"] == "message":
                    rest.append(line)
                if len(rest) == 2:
                    break
    assert [(line["channel"], line["data"]) for line in rest] == [
        ("nd-vb", {"b": 1}),
        ("nd-vb", {"b": 2}),
    ]
    assert rest[-1]["id"] == f"nd-vb={b[2]},nd-va={a[2]}"


def test_gap_lines_for_truncated_and_malformed_positions(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    url = f"{shared_gateway.url}/subscribe/nd-gap"
    with Publisher(redis_server.url, history=HistoryLimits(max_len=5)) as publisher:
        stale = publisher.publish("nd-gap", {"n": 0})
        ids = publisher.publish_many("nd-gap", [{"n": n} for n in range(1, 400)])
    headers = {**NDJSON, "last-event-id": stale}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        gap, after = _lines(response.iter_lines(), 2)
    assert gap["type"] == "gap"
    assert (gap["channel"], gap["reason"]) == ("nd-gap", "truncated")
    assert gap["id"] == gap["resumed_at"] and gap["resumed_at"] in ids
    assert after["id"] == ids[ids.index(gap["resumed_at"]) + 1]

    headers = {**NDJSON, "last-event-id": "garbage"}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        (gap,) = _lines(response.iter_lines(), 1)
    assert (gap["type"], gap["reason"], gap["resumed_at"]) == ("gap", "malformed", ids[-1])


def test_idle_streams_get_keepalive_lines_that_are_json(shared_gateway: GatewayProcess) -> None:
    url = f"{shared_gateway.url}/subscribe/nd-idle"
    with httpx.stream("GET", url, headers=NDJSON, timeout=10) as response:
        kinds = [json.loads(line)["type"] for line in islice(response.iter_lines(), 3)]
    assert kinds == ["open", "keepalive", "keepalive"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/event-stream"),
        ("*/*", "text/event-stream"),
        ("text/event-stream, application/x-ndjson;q=0.5", "text/event-stream"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("application/x-ndjson, */*;q=0.1", "application/x-ndjson"),
    ],
)
def test_sse_stays_the_default(shared_gateway: GatewayProcess, accept: str, expected: str) -> None:
    headers = {"accept": accept} if accept else {}
    url = f"{shared_gateway.url}/subscribe/nd-default"
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.headers["content-type"].split(";")[0] == expected


def test_slow_ndjson_consumer_is_closed_then_resumes_exactly(
    redis_server: RedisServer, start_gateway: Callable[..., GatewayProcess]
) -> None:
    env = {**FAST, "GATEWAY_SUBSCRIBER_BUFFER_BYTES": "65536", "GATEWAY_SEND_TIMEOUT": "60"}
    gateway = start_gateway(redis_server.url, env=env)
    url = f"{gateway.url}/subscribe/nd-slow"
    blob = "x" * 16_000
    with Publisher(redis_server.url, history=HistoryLimits(max_len=10_000)) as publisher:
        start = publisher.publish("nd-slow", {"n": -1})
        with httpx.stream("GET", url, headers=NDJSON, timeout=30) as response:
            stream = response.iter_lines()
            opening = _lines(stream, 1, ("open",))[0]
            assert opening["id"] == start
            # The client reads nothing while ~24 MB arrive: socket buffers fill, then the
            # subscription's 64 KiB buffer overflows and the gateway ends the stream as "slow".
            ids = [publisher.publish("nd-slow", {"n": n, "blob": blob}) for n in range(1500)]
            lines = [json.loads(line) for line in stream]
        assert lines[-1] == {"type": "close", "reason": "slow"}
        delivered = [line["id"] for line in lines if line["type"] == "message"]
        assert delivered == ids[: len(delivered)] and len(delivered) < len(ids)
        # On a busy machine the buffer may overflow before anything was written: then the
        # client resumes from the position the stream opened at.
        headers = {**NDJSON, "last-event-id": delivered[-1] if delivered else start}
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            rest = _lines(response.iter_lines(), len(ids) - len(delivered))
    assert [line["id"] for line in rest] == ids[len(delivered) :]


def test_a_stalled_ndjson_reader_is_dropped_after_the_send_timeout(
    redis_server: RedisServer, start_gateway: Callable[..., GatewayProcess]
) -> None:
    # Buffers far larger than what is published: only the send timeout can end this stream.
    env = {
        **FAST,
        "GATEWAY_SEND_TIMEOUT": "1",
        "GATEWAY_SUBSCRIBER_BUFFER_BYTES": str(256 << 20),
        "GATEWAY_SUBSCRIBER_BUFFER_MESSAGES": "100000",
    }
    gateway = start_gateway(redis_server.url, env=env)
    closed = 'sse_stream_closes_total{reason="send_timeout"} 1.0'
    blob = "x" * 16_000
    with Publisher(redis_server.url, history=HistoryLimits(max_len=10)) as publisher:
        url = f"{gateway.url}/subscribe/nd-stall"
        with httpx.stream("GET", url, headers=NDJSON, timeout=30) as response:
            stream = response.iter_lines()
            assert json.loads(next(stream))["type"] == "open"
            for n in range(1500):  # ~24 MB the client does not read: the server's send blocks
                publisher.publish("nd-stall", {"n": n, "blob": blob})
            deadline = time.monotonic() + 30
            while closed not in httpx.get(f"{gateway.url}/metrics").text:
                assert time.monotonic() < deadline, "the stalled stream was never dropped"
                time.sleep(0.1)
            rest: list[str] = []
            with pytest.raises(httpx.RemoteProtocolError):  # the server hung up mid-chunk
                rest.extend(stream)
    *whole, last = rest
    assert {json.loads(line)["type"] for line in whole} == {"message"}  # and no close line
    assert last.startswith('{"type":"message"')  # maybe cut short: readers must drop it
