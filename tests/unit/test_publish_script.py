"""The atomic publish script, run by fakeredis' Lua exactly as Redis runs it."""

from __future__ import annotations

import fakeredis

from publisher import AsyncPublisher
from publisher.wire import HistoryLimits, decode_envelope, parse_stream_id, stream_key


async def test_each_entry_names_its_predecessor(publisher, redis_client) -> None:
    ids = await publisher.publish_many("chain", [{"n": n} for n in range(5)])
    entries = await redis_client.xrange(stream_key("chain"))
    assert [e[0].decode() for e in entries] == ids
    prevs = [e[1][b"p"].decode() for e in entries]
    assert prevs == ["0-0", *ids[:-1]]
    assert [parse_stream_id(i) for i in ids] == sorted(parse_stream_id(i) for i in ids)


async def test_announcement_matches_history(publisher, redis_client) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe("ann")
    await pubsub.get_message(timeout=1)
    first = await publisher.publish("ann", {"a": 1}, event="created")
    second = await publisher.publish("ann", [1, 2])
    one = decode_envelope((await pubsub.get_message(timeout=1))["data"])
    two = decode_envelope((await pubsub.get_message(timeout=1))["data"])
    assert (one.id, one.prev, one.event, one.data) == (first, "0-0", "created", b'{"a":1}')
    assert (two.id, two.prev, two.event, two.data) == (second, first, "", b"[1,2]")
    await pubsub.aclose()


async def test_history_is_trimmed_by_length_and_expires(fake_server) -> None:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    limits = HistoryLimits(max_len=10, max_age_ms=0, ttl_ms=60_000)
    publisher = AsyncPublisher(client=client, history=limits)
    for _ in range(5):
        await publisher.publish_many("trim", [{"n": n} for n in range(100)])
    length = await client.xlen(stream_key("trim"))
    assert 10 <= length < 500  # approximate trimming keeps whole nodes
    ttl = await client.pttl(stream_key("trim"))
    assert 0 < ttl <= 60_000
    await client.aclose()


async def test_history_is_trimmed_by_age(fake_server) -> None:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    key = stream_key("aged")
    await client.xadd(key, {"p": "0-0", "e": "", "d": "1"}, id="1000-0")
    publisher = AsyncPublisher(client=client, history=HistoryLimits(max_age_ms=1000))
    new_id = await publisher.publish("aged", 2)
    entries = await client.xrange(key)
    assert [e[0].decode() for e in entries] == [new_id]
    await client.aclose()
