"""Concurrent publishes share one pipelined round trip and keep their own ids and atomicity."""

from __future__ import annotations

import asyncio

from gateway.broker.coalesce import PublishCoalescer
from publisher.wire import stream_key


async def test_concurrent_publishes_each_get_their_ids(broker, redis_client):
    batches = [[("", b'{"n":%d}' % n), ("", b'{"m":%d}' % n)] for n in range(20)]
    results = await asyncio.gather(
        *(broker.publish(f"co{n % 3}", b) for n, b in enumerate(batches))
    )
    assert all(len(ids) == 2 for ids in results)
    per_channel = [
        {i for n, ids in enumerate(results) if n % 3 == c for i in ids} for c in range(3)
    ]
    assert sum(len(ids) for ids in per_channel) == 40  # ids are unique within a channel
    for channel in ("co0", "co1", "co2"):
        entries = await redis_client.xrange(stream_key(channel))
        prevs = [e[1][b"p"].decode() for e in entries]
        assert prevs == ["0-0", *[e[0].decode() for e in entries[:-1]]]  # one unbroken chain


async def test_pipelined_publish_loads_the_script_when_redis_forgot_it(publisher, redis_client):
    await redis_client.script_flush()
    coalescer = PublishCoalescer(publisher)
    first, second = await asyncio.gather(
        coalescer.publish("sf", [("", b"1")]), coalescer.publish("sf", [("", b"2")])
    )
    assert len(first) == len(second) == 1 and first != second
