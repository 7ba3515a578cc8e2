"""Channel isolation: whatever name a client sends, it reaches only the gateway's own keys and
pub/sub channels, never arbitrary Redis keys, keyspace notifications or pattern subscriptions.

Proved against a Redis of this test's own: after every attempt, the only pub/sub channels the
gateway holds are valid channel names, it holds no pattern subscription (we SUBSCRIBE, never
PSUBSCRIBE), and the only keys it wrote are ``sse:stream:{<valid name>}``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from gateway.control import CONTROL_CHANNEL
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

VALID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}")
HOSTILE_NAMES = [
    "__keyspace@0__:sse:stream:{orders}",
    "__keyevent@0__:set",
    "__redis__:invalidate",
    "__sentinel__:hello",
    "__gateway_control",
    "*",
    "orders.*",
    "orders?",
    "[a-z]*",
    "sse:stream:{orders}",
    "{orders}",
    "gateway@control",
    "@internal",
    ".hidden",
    "-flag",
    "a b",
    "a\tb",
    "a/b",
    "..",
    "ümlaut",
    "",
]


@pytest.fixture
def isolated(
    own_redis: RedisServer, start_gateway: Callable[..., GatewayProcess]
) -> tuple[RedisServer, GatewayProcess]:
    own_redis.client().config_set("notify-keyspace-events", "KEA")  # make them exist
    return own_redis, start_gateway(own_redis.url)


async def test_no_name_reaches_internal_channels_or_keys(
    isolated: tuple[RedisServer, GatewayProcess],
):
    redis, gateway = isolated
    async with httpx.AsyncClient(timeout=10) as http:
        for name in HOSTILE_NAMES:
            encoded = quote(name, safe="")
            responses = [
                await http.get(f"{gateway.url}/subscribe?channel={encoded}"),
                await http.post(f"{gateway.url}/publish/{encoded}", json={"x": 1}),
            ]
            if encoded:
                responses.append(await http.get(f"{gateway.url}/subscribe/{encoded}"))
            for response in responses:
                assert 400 <= response.status_code < 500, (name, response.status_code)
    # a legitimate subscription and publish, to compare against
    async with sse_connect(gateway.url + "/subscribe/iso.ok") as stream:
        await stream.next_frame()
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.post(gateway.url + "/publish/iso.ok", json={})).status_code == 202
        assert await stream.next_event() is not None
        client = redis.client()
        channels = {c.decode() for c in client.pubsub_channels()}
        assert "iso.ok" in channels
        # The gateway's own control channel, under a name no channel can take (gateway.control)
        assert CONTROL_CHANNEL in channels and not VALID.fullmatch(CONTROL_CHANNEL)
        assert all(VALID.fullmatch(c) for c in channels - {CONTROL_CHANNEL}), channels
        assert client.pubsub_numpat() == 0
    keys = {k.decode() for k in client.keys("*")}
    # history, and the subscriber count while it lasts (gone once the stream's exit is written)
    assert {"sse:stream:{iso.ok}"} <= keys <= {"sse:stream:{iso.ok}", "sse:presence:{iso.ok}"}


async def test_keyspace_notifications_never_reach_a_subscriber(
    isolated: tuple[RedisServer, GatewayProcess],
):
    redis, gateway = isolated
    async with sse_connect(gateway.url + "/subscribe/iso.watch") as stream:
        await stream.next_frame()
        # keyspace events fire for the gateway's own stream key; a subscriber must not see them
        async with httpx.AsyncClient(timeout=10) as http:
            first = await http.post(gateway.url + "/publish/iso.watch", json={"n": 1})
            redis.client().set("iso.watch", "a plain key with the channel's name")
            second = await http.post(gateway.url + "/publish/iso.watch", json={"n": 2})
        events = await stream.collect(2, timeout=10)
        assert [e.id for e in events] == [first.json()["id"], second.json()["id"]]
        with pytest.raises(TimeoutError):
            await stream.next_event(timeout=0.5)
    await asyncio.sleep(0)
