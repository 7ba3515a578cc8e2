"""Presence, the control channel and revocation on the real broker and hub, over fakeredis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest

from gateway.broker.redis import RedisBroker
from gateway.control import CONTROL_CHANNEL, Control
from gateway.events import REVOKED
from gateway.hub import Hub
from gateway.presence import Presence
from gateway.presence_store import PresenceStore
from gateway.revocation import Revocation
from gateway.subscription import Subscription

pytestmark = pytest.mark.timeout(20)


def store(client: Any, replica: str, ttl: float = 15.0) -> PresenceStore:
    return PresenceStore(client, "sse:", replica, ttl)


async def test_counts_and_subjects_add_up_over_replicas(redis_client: fakeredis.FakeAsyncRedis):
    one, two = store(redis_client, "r1"), store(redis_client, "r2")
    await one.write("c", 3, {"alice": 2, "bob": 1}, [])
    await two.write("c", 2, {"alice": 1}, [])
    assert await one.count("c") == 5
    assert await two.subjects("c") == (5, {"alice": 3, "bob": 1})
    await one.write("c", 1, {"alice": 1}, ["bob"])  # bob left r1
    assert await two.subjects("c") == (3, {"alice": 2})
    await one.write("c", 0, {}, ["alice"])
    await two.write("c", 0, {}, ["alice"])
    assert await one.subjects("c") == (0, {})
    assert await redis_client.exists("sse:presence:{c}", "sse:subjects:{c}") == 0


async def test_a_replica_that_stops_refreshing_drops_out(redis_client: fakeredis.FakeAsyncRedis):
    live, dead = store(redis_client, "live"), store(redis_client, "dead", ttl=0.2)
    await live.write("c", 1, {"alice": 1}, [])
    await dead.write("c", 4, {"mallory": 4}, [])
    assert await live.count("c") == 5
    await asyncio.sleep(0.3)
    assert await live.subjects("c") == (1, {"alice": 1})  # read past the deadline: not counted
    await live.write("c", 1, {"alice": 1}, [])  # the next write deletes what is dead
    assert await redis_client.hkeys("sse:presence:{c}") == [b"live"]
    assert await redis_client.hkeys("sse:subjects:{c}") == [b"live/alice"]


async def test_keys_expire_when_nobody_refreshes(redis_client: fakeredis.FakeAsyncRedis):
    await store(redis_client, "r", ttl=5.0).write("c", 1, {"s": 1}, [])
    for key in ("sse:presence:{c}", "sse:subjects:{c}"):
        assert 0 < await redis_client.pttl(key) <= 5000


class Tools:
    def __init__(self, hub: Hub, broker: RedisBroker, events: bool = True) -> None:
        self.hub = hub
        self.control = Control(hub, broker)
        self.store = store(broker.client, "here")
        self.presence = Presence(hub, self.store, self.control, ttl=15.0, events=events)
        self.revocation = Revocation(hub, self.control)

    async def join(self, channels: tuple[str, ...], subject: str | None, presence: bool = False):
        def make(heads: dict[str, str]) -> Subscription:
            return Subscription(
                channels,
                heads,
                max_messages=100,
                max_bytes=1 << 16,
                subject=subject,
                presence=presence,
            )

        return await self.hub.join(channels, make)


@pytest.fixture
async def tools(hub: Hub, broker: RedisBroker) -> AsyncIterator[Tools]:
    tools = Tools(hub, broker)
    await tools.control.start()
    yield tools


async def next_chunk(subscription: Subscription, timeout: float = 2.0) -> bytes:
    async with asyncio.timeout(timeout):
        return await anext(subscription.chunks())


async def test_streams_joining_and_leaving_are_written_on_flush(tools: Tools):
    alice = await tools.join(("p1", "p2"), "alice")
    anonymous = await tools.join(("p1",), None)
    await tools.presence.flush()
    assert await tools.store.subjects("p1") == (2, {"alice": 1})
    assert await tools.store.count("p2") == 1
    tools.presence._dirty.add("p1")  # what the periodic refresh does: the count field only
    await tools.presence.flush()
    assert await tools.store.subjects("p1") == (2, {"alice": 1})
    tools.hub.leave(alice)
    tools.hub.leave(alice)  # a second leave for the same stream changes nothing
    await tools.presence.flush()
    assert await tools.store.subjects("p1") == (1, {})
    assert await tools.store.count("p2") == 0
    tools.hub.leave(anonymous)
    await tools.presence.flush()
    # nothing kept for channels no stream is on
    assert tools.presence._streams == {} and tools.presence._subjects == {}


async def test_join_and_leave_reach_streams_that_asked(tools: Tools):
    listener = await tools.join(("pj",), "watcher", presence=True)
    bystander = await tools.join(("pj",), "quiet")
    await tools.presence.flush()
    own = await next_chunk(listener)
    assert b"event: gateway.join\n" in own and b'"subject":"watcher"' in own
    carol = await tools.join(("pj",), "carol")
    await tools.presence.flush()
    tools.hub.leave(carol)
    await tools.presence.flush()
    frames = b""
    while b"gateway.leave" not in frames:
        frames += await next_chunk(listener)
    assert frames.index(b'gateway.join\ndata: {"channel":"pj","subject":"carol"}') < frames.index(
        b'gateway.leave\ndata: {"channel":"pj","subject":"carol"}'
    )
    assert bystander._queue == []  # the quiet one never got any of them


async def test_events_off_sends_no_control_messages(hub: Hub, broker: RedisBroker):
    tools = Tools(hub, broker, events=False)
    await tools.join(("pq",), "alice")
    sent: list[Any] = []
    tools.control.send = lambda *a, **k: sent.append(a)  # type: ignore[method-assign,assignment,return-value]
    await tools.presence.flush()
    assert sent == []
    assert await tools.store.count("pq") == 1


async def test_revoking_a_channel_closes_only_its_streams(tools: Tools):
    doomed = await tools.join(("rv", "other"), "a")
    spared = await tools.join(("other",), "b")
    assert await tools.revocation.revoke_channel("rv") == 1  # this process heard it
    await _until(lambda: doomed.close_reason is not None)
    assert doomed.close_reason == REVOKED and spared.close_reason is None


async def test_revoking_a_subject_closes_its_streams_on_every_channel(tools: Tools):
    doomed = [await tools.join(("s1",), "mallory"), await tools.join(("s2",), "mallory")]
    spared = await tools.join(("s1",), "alice")
    await tools.revocation.revoke_subject("mallory")
    await _until(lambda: all(s.close_reason == REVOKED for s in doomed))
    assert spared.close_reason is None


async def _until(condition: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[]", b'{"kind": "nope"}', b'{"kind": "revoke_channel"}', b"null"],
)
async def test_malformed_control_messages_are_dropped(tools: Tools, payload: bytes, caplog):
    tools.hub.on_message(CONTROL_CHANNEL, payload)  # the path a pub/sub message takes
    assert "malformed control message" in caplog.text


async def test_other_unknown_channels_are_ignored(tools: Tools, caplog):
    tools.hub.on_message("released-channel", orjson.dumps({"kind": "revoke_subject"}))
    assert caplog.text == ""
