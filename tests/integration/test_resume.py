"""Exact resume with Last-Event-ID across disconnects and replicas, under concurrent publishing."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import httpx
import pytest

from publisher import AsyncPublisher
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

MESSAGES = 3000


async def _publish(redis_url: str, channels: tuple[str, ...], count: int) -> None:
    async with AsyncPublisher(redis_url) as publisher:
        for seq in range(count):
            channel = channels[seq % len(channels)]
            await publisher.publish(channel, {"channel": channel, "seq": seq})
            if seq % 100 == 0:
                await asyncio.sleep(0.01)  # let subscribers fall behind and catch up


async def _consume_with_reconnects(
    urls: list[str], path: str, expected: int, seed: int, joined: asyncio.Event
):
    """Read, hang up after a random number of events, reconnect to the next replica with the
    last id - like a browser would - until everything arrived. Returns (events, connections)."""
    rng = random.Random(seed)
    received: list[dict] = []
    last_id: str | None = None
    connections = 0
    while len(received) < expected:
        url = urls[connections % len(urls)]
        connections += 1
        async with sse_connect(url + path, last_event_id=last_id) as stream:
            budget = rng.randint(50, 400)
            while budget and len(received) < expected:
                frame = await stream.next_frame(timeout=15)
                assert frame is not None, "the server ended the stream"
                joined.set()
                assert frame.event != "gateway.gap", frame.data
                last_id = stream.last_event_id
                if frame.data is not None:
                    received.append(frame.json())
                    budget -= 1
    return received, connections


def _assert_exact(received: list[dict], channels: tuple[str, ...], count: int) -> None:
    per_channel: dict[str, list[int]] = defaultdict(list)
    for event in received:
        per_channel[event["channel"]].append(event["seq"])
    for channel in channels:
        expected = [seq for seq in range(count) if channels[seq % len(channels)] == channel]
        got = per_channel[channel]
        assert len(got) == len(set(got)), f"duplicates on {channel}"
        assert got == expected, f"gap or disorder on {channel}"


@pytest.mark.parametrize("channels", [("r1",), ("r2a", "r2b", "r2c")], ids=["single", "multi"])
@pytest.mark.parametrize("replicas", [1, 2], ids=["same-gateway", "across-gateways"])
async def test_resume_is_exact_under_concurrent_publishing(
    redis_server, start_gateway, channels, replicas
):
    channels = tuple(f"{c}-{replicas}" for c in channels)
    urls = [start_gateway(redis_server.url).url for _ in range(replicas)]
    path = (
        f"/subscribe/{channels[0]}"
        if len(channels) == 1
        else "/subscribe?" + "&".join(f"channel={c}" for c in channels)
    )
    # Join before publishing starts so "everything" is well defined: the first stream's id-only
    # preamble fixes the starting position, and every later connection resumes from there on.
    joined = asyncio.Event()
    consumer = asyncio.create_task(_consume_with_reconnects(urls, path, MESSAGES, replicas, joined))
    await asyncio.wait_for(joined.wait(), 15)
    await _publish(redis_server.url, channels, MESSAGES)
    received, connections = await asyncio.wait_for(consumer, 90)
    _assert_exact(received, channels, MESSAGES)
    assert connections > 5  # it really did reconnect, many times
    print(f"{channels}: {len(received)} events over {connections} connections, 0 lost, 0 dup")


async def test_query_parameter_resumes_and_the_header_wins(gateway):
    async with httpx.AsyncClient() as http:
        ids = [
            (await http.post(gateway.url + "/publish/q1", json=n)).json()["id"] for n in range(3)
        ]
    async with sse_connect(f"{gateway.url}/subscribe/q1?lastEventId={ids[0]}") as stream:
        assert [e.json() for e in await stream.collect(2)] == [1, 2]
    url = f"{gateway.url}/subscribe/q1?lastEventId={ids[0]}"
    async with sse_connect(url, last_event_id=ids[1]) as stream:
        assert [e.json() for e in await stream.collect(1)] == [2]


async def _gap_then_events(url: str, last_event_id: str, count: int):
    async with sse_connect(url, last_event_id=last_event_id) as stream:
        gap = await stream.next_event()
        return gap, await stream.collect(count, timeout=10)


async def test_truncated_history_is_signalled_then_the_rest_replayed(redis_server, start_gateway):
    gateway = start_gateway(redis_server.url, env={"GATEWAY_HISTORY_MAX_LEN": "5"})
    body = b"".join(b'{"n":%d}\n' % n for n in range(400))
    async with httpx.AsyncClient() as http:
        first = (await http.post(gateway.url + "/publish/trunc", json=-1)).json()["id"]
        reply = await http.post(
            gateway.url + "/publish/trunc",
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
    ids = reply.json()["ids"]
    retained = redis_server.client().xlen("sse:stream:{trunc}")
    assert retained < 401
    gap, events = await _gap_then_events(gateway.url + "/subscribe/trunc", first, retained)
    assert gap.event == "gateway.gap"
    assert gap.json()["reason"] == "truncated" and gap.json()["channel"] == "trunc"
    assert [e.json()["n"] for e in events] == list(range(400 - retained, 400))
    assert events[-1].id == ids[-1]


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [("not-an-id", "malformed"), ("99999999999999-0", "unknown"), ("a=1-0,b", "malformed")],
)
async def test_unusable_ids_are_signalled_and_the_stream_goes_live(gateway, last_event_id, reason):
    async with sse_connect(gateway.url + "/subscribe/bad-id", last_event_id=last_event_id) as s:
        gap = await s.next_event()
        assert (gap.event, gap.json()["reason"]) == ("gateway.gap", reason)
        async with httpx.AsyncClient() as http:
            sent = (await http.post(gateway.url + "/publish/bad-id", json="live")).json()["id"]
        live = await s.next_event()
    assert (live.id, live.json()) == (sent, "live")
