"""A client that goes away is cleaned up, down to the Redis subscription."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


async def _numsub(redis_server, channel: str) -> int:
    return int(redis_server.client().pubsub_numsub(channel)[0][1])


async def _wait_numsub(redis_server, channel: str, expected: int, timeout: float = 5.0) -> int:
    async with asyncio.timeout(timeout):
        while (count := await _numsub(redis_server, channel)) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return count


async def test_redis_subscription_follows_local_subscribers(gateway, redis_server):
    streams = [sse_connect(gateway.url + "/subscribe/dc") for _ in range(5)]
    opened = [await s.__aenter__() for s in streams]
    for stream in opened:
        await stream.next_frame()
    assert await _numsub(redis_server, "dc") == 1  # one upstream, however many clients
    for s in streams[:4]:
        await s.__aexit__(None, None, None)
    await asyncio.sleep(0.5)
    assert await _numsub(redis_server, "dc") == 1  # still one client left
    await streams[4].__aexit__(None, None, None)
    assert await _wait_numsub(redis_server, "dc", 0) == 0


async def test_multi_channel_disconnect_drops_every_channel(gateway, redis_server):
    async with sse_connect(gateway.url + "/subscribe?channel=dm1&channel=dm2") as stream:
        await stream.next_frame()
        assert await _numsub(redis_server, "dm1") == await _numsub(redis_server, "dm2") == 1
    assert await _wait_numsub(redis_server, "dm1", 0) == 0
    assert await _wait_numsub(redis_server, "dm2", 0) == 0
