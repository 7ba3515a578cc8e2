"""A client that stops reading: the others get everything, it is cut off once its buffer
overflows, the gateway's memory stays bounded, and it resumes exactly from its last id."""

from __future__ import annotations

import asyncio

import pytest

from publisher import Publisher
from publisher.wire import HistoryLimits
from tests.faults.support import (
    ascrape,
    drain_socket,
    fast_collect,
    parse_raw_response,
    rss_kib,
    scrape,
    stalled_socket,
    wait_for,
)
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

MESSAGES = 1200
PAD = "x" * 8000  # ~9.6 MB in all: far more than socket buffers and the subscriber buffer hold
BUFFER_BYTES = 1024 * 1024
BATCH = 10  # a burst must fit a reading client's buffer: size buffers for your bursts


def _publish_all(url: str, channel: str) -> list[str]:
    ids: list[str] = []
    with Publisher(url, history=HistoryLimits(max_len=MESSAGES * 2)) as publisher:
        for start in range(0, MESSAGES, BATCH):
            batch = [{"seq": seq, "pad": PAD} for seq in range(start, start + BATCH)]
            ids += publisher.publish_many(channel, batch)
    return ids


async def test_stalled_client_is_cut_off_others_get_everything_and_it_resumes(
    redis_server, start_gateway
):
    gateway = start_gateway(
        redis_server.url,
        env={
            "GATEWAY_SUBSCRIBER_BUFFER_BYTES": str(BUFFER_BYTES),
            "GATEWAY_SEND_TIMEOUT": "2",
            "GATEWAY_REPLAY_MAX": str(MESSAGES * 2),
        },
    )
    url = gateway.url + "/subscribe/slow-1"
    readers = [
        asyncio.create_task(fast_collect(gateway.port, "/subscribe/slow-1", MESSAGES))
        for _ in range(2)
    ]
    stalled = stalled_socket(gateway.port, "/subscribe/slow-1")
    try:
        assert await wait_for(lambda: _gauge(gateway.url, "sse_subscriptions") == 3)
        rss_before = rss_kib(gateway.proc.pid)
        publishing = asyncio.create_task(
            asyncio.to_thread(_publish_all, redis_server.url, "slow-1")
        )
        rss_peak = rss_before
        while not publishing.done():
            rss_peak = max(rss_peak, rss_kib(gateway.proc.pid))
            await asyncio.sleep(0.05)
        ids = await publishing
        for reader in readers:
            assert await reader == list(range(MESSAGES)), "a reading client missed something"
        rss_peak = max(rss_peak, rss_kib(gateway.proc.pid))
        print(
            f"RSS with a stalled client: {rss_before} KiB before, peak {rss_peak} KiB "
            f"(+{(rss_peak - rss_before) / 1024:.1f} MiB) while ~{MESSAGES * len(PAD) >> 20} MiB "
            "were published"
        )
        # Generous: the subscriber buffer is 1 MiB and the transport's 64 KiB; never the 9 MiB.
        assert rss_peak - rss_before < 48 * 1024

        assert await wait_for(lambda: _gauge(gateway.url, "sse_connections") == 0, timeout=30)
        metrics = await ascrape(gateway.url)
        assert metrics['sse_stream_closes_total{reason="slow"}'] == 1

        # What the stalled client holds is a clean prefix of the stream (the SSE parser drops an
        # unterminated last frame); it resumes from its last complete id and misses nothing.
        prefix = parse_raw_response(await asyncio.to_thread(drain_socket, stalled))
    finally:
        stalled.close()
    got = [e.json()["seq"] for e in prefix.events if e.data is not None]
    assert got == list(range(len(got))), "the stalled client's prefix is corrupt"
    print(f"stalled client held {len(got)} complete events before it was cut off")
    async with sse_connect(url, last_event_id=prefix.parser.last_event_id) as resumed:
        rest = await resumed.collect(MESSAGES - len(got), timeout=60)
    assert got + [e.json()["seq"] for e in rest] == list(range(MESSAGES))
    assert [e.id for e in rest] == ids[len(got) :]


def _gauge(url: str, name: str) -> float:
    return scrape(url).get(name, -1)
