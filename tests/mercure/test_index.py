"""The id index beside the Mercure log (publisher.wire.INDEXED_PUBLISH_SCRIPT), on fakeredis."""

from __future__ import annotations

import fakeredis
import orjson
import pytest

from publisher.wire import (
    INDEXED_PUBLISH_SCRIPT,
    HistoryLimits,
    index_keys,
    publish_args,
    stream_key,
)

LIMITS = HistoryLimits(max_len=10, max_age_ms=0, ttl_ms=60_000)


async def _publish(redis, script, own_ids: list[str]) -> list[str]:
    keys = [stream_key("@log"), *index_keys("@log")]
    batch = [("", orjson.dumps({"i": own, "t": ["x"], "d": ""})) for own in own_ids]
    raw = await script(keys=keys, args=publish_args("@log", batch, LIMITS))
    return [item.decode() for item in raw]


@pytest.mark.timeout(10)
async def test_index_maps_own_ids_keeps_the_first_and_is_bounded():
    redis = fakeredis.FakeAsyncRedis()
    script = redis.register_script(INDEXED_PUBLISH_SCRIPT)
    index, order = index_keys("@log")
    first = await _publish(redis, script, ["a", "b", "a"])
    assert (await redis.hget(index, "a")).decode() == first[0]  # a reused id: the earliest
    assert (await redis.hget(index, "b")).decode() == first[1]
    await _publish(redis, script, [f"n{n}" for n in range(200)])
    cap = 2 * LIMITS.max_len + 100
    assert await redis.llen(order) == cap == await redis.hlen(index)
    assert await redis.hget(index, "a") is None  # evicted with the oldest
    assert await redis.hget(index, "n199") is not None
    assert 0 < await redis.pttl(index) <= LIMITS.ttl_ms
    entries = await redis.xrange(stream_key("@log"))
    assert [orjson.loads(fields[b"d"])["i"] for _, fields in entries][-1] == "n199"
