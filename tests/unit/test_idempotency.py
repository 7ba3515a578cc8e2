"""The idempotent publish script (publisher.idempotency) on fakeredis's Lua."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from publisher import AsyncPublisher, InvalidMessage
from publisher.idempotency import Idempotency, is_valid_idempotency_key

pytestmark = pytest.mark.timeout(10)


async def test_same_key_publishes_once_and_answers_the_same_ids(
    publisher: AsyncPublisher, redis_client: fakeredis.FakeAsyncRedis
) -> None:
    first = await publisher.publish_many("i1", [1, 2], idempotency_key="order-7")
    again = await publisher.publish_many("i1", [3], idempotency_key="order-7")
    assert again == first and len(first) == 2
    assert await redis_client.xlen("sse:stream:{i1}") == 2


async def test_key_is_per_channel_and_expires(
    publisher: AsyncPublisher, redis_client: fakeredis.FakeAsyncRedis
) -> None:
    one = await publisher.publish("i2", 1, idempotency_key="k")
    await publisher.publish("i3", 1, idempotency_key="k")
    assert await redis_client.xlen("sse:stream:{i3}") == 1  # another channel: published
    assert 0 < await redis_client.pttl("sse:idem:{i2}:k") <= 300_000
    await redis_client.delete("sse:idem:{i2}:k")  # the window has passed
    assert await publisher.publish("i2", 1, idempotency_key="k") != one


async def test_concurrent_retries_publish_once(
    publisher: AsyncPublisher, redis_client: fakeredis.FakeAsyncRedis
) -> None:
    ids = await asyncio.gather(*(publisher.publish("i4", 1, idempotency_key="x") for _ in range(8)))
    assert len(set(ids)) == 1
    assert await redis_client.xlen("sse:stream:{i4}") == 1


@pytest.mark.parametrize("key", ["", "a b", "{slot}", "x" * 129, "é", "a,b"])
def test_bad_keys_are_refused(key: str) -> None:
    assert not is_valid_idempotency_key(key)
    with pytest.raises(ValueError):
        Idempotency(key)


async def test_library_refuses_a_bad_key_before_any_io(publisher: AsyncPublisher) -> None:
    with pytest.raises(InvalidMessage):
        await publisher.publish("i5", 1, idempotency_key="no spaces")
