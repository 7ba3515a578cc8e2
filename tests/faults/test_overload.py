"""Overload: every limit holds exactly at its boundary and answers past it with a clear JSON
error - 503 + Retry-After for "this replica is full", 400/413 for requests that can never
succeed as sent - and the process keeps serving."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.faults.support import scrape, wait_for
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

LIMITS = {
    "GATEWAY_MAX_CONNECTIONS": "3",
    "GATEWAY_MAX_CHANNELS_PER_STREAM": "4",
    "GATEWAY_MAX_BODY_BYTES": "1024",
    "GATEWAY_MAX_BATCH_MESSAGES": "5",
}


@pytest.fixture
def limited(redis_server, start_gateway):
    return start_gateway(redis_server.url, env=LIMITS)


async def test_connection_cap_answers_503_with_retry_after_and_frees_slots(limited):
    url = limited.url + "/subscribe/cap"
    async with httpx.AsyncClient(timeout=10) as http:
        async with sse_connect(url) as one, sse_connect(url) as two, sse_connect(url) as three:
            for stream in (one, two, three):
                assert (await stream.next_frame()).id is not None
            replies = await asyncio.gather(*(http.get(url) for _ in range(5)))
            for reply in replies:
                assert reply.status_code == 503
                assert reply.json()["error"] == "over_capacity"
                assert int(reply.headers["retry-after"]) >= 1
            assert (await http.get(limited.url + "/healthz")).status_code == 200
            publish = await http.post(limited.url + "/publish/cap", json={"still": "serving"})
            assert publish.status_code == 202  # the cap is on streams, not on other requests
            assert (await one.next_event()).json() == {"still": "serving"}
        # All three hung up: their slots are free again.
        assert await wait_for(lambda: scrape(limited.url)["sse_connections"] == 0)
        async with sse_connect(url) as again:
            assert (await again.next_frame()).id is not None
    metrics = scrape(limited.url)
    assert metrics["sse_over_capacity_total"] == 5


async def test_channels_per_stream_boundary(limited):
    """400, not 429: the same request can never succeed, so waiting and retrying is no answer."""
    query = "&".join(f"channel=many-{n}" for n in range(4))
    async with sse_connect(f"{limited.url}/subscribe?{query}") as stream:
        assert (await stream.next_frame()).id.count("=") == 4
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(f"{limited.url}/subscribe?{query}&channel=many-4")
    assert reply.status_code == 400
    assert reply.json()["error"] == "too_many_channels"
    assert "retry-after" not in reply.headers


async def test_body_size_boundary(limited):
    url = limited.url + "/publish/body"
    exact = b'{"pad":"' + b"x" * (1024 - 10) + b'"}'
    assert len(exact) == 1024
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(url, content=exact, headers=headers)).status_code == 202
        over = await http.post(url, content=exact + b" ", headers=headers)
        assert over.status_code == 413 and over.json()["error"] == "body_too_large"

        async def chunked(body: bytes):  # no Content-Length: the limit is enforced while reading
            for start in range(0, len(body), 100):
                yield body[start : start + 100]

        streamed = await http.post(url, content=chunked(exact + b" "), headers=headers)
        assert streamed.status_code == 413 and streamed.json()["error"] == "body_too_large"
        streamed_ok = await http.post(url, content=chunked(exact), headers=headers)
        assert streamed_ok.status_code == 202


async def test_ndjson_batch_boundary(limited):
    url = limited.url + "/publish/batch"
    headers = {"content-type": "application/x-ndjson"}
    five = b"".join(b'{"n":%d}\n' % n for n in range(5))
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(url, content=five, headers=headers)
        assert reply.status_code == 202 and len(reply.json()["ids"]) == 5
        six = five + b'{"n":5}\n'
        reply = await http.post(url, content=six, headers=headers)
        assert reply.status_code == 413 and reply.json()["error"] == "batch_too_large"
