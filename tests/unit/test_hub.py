"""The hub on the real broker code over fakeredis: fan-out, upstream lifecycle, recovery, gaps."""

from __future__ import annotations

import asyncio

import orjson

from gateway.hub import Hub
from gateway.subscription import Subscription
from publisher.wire import stream_key


def _factory(channels, **limits):
    limits = {"max_messages": 1000, "max_bytes": 1 << 20, **limits}
    return lambda heads: Subscription(channels, heads, **limits)


async def _drain(sub: Subscription, timeout: float = 1.0) -> list[bytes]:
    """Everything the subscription has to say within ``timeout``, as separate frames."""
    frames: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            async for chunk in sub.chunks():
                frames.extend(f + b"\n\n" for f in chunk.split(b"\n\n") if f)
    except TimeoutError:
        pass
    return frames


def _data(frames: list[bytes]) -> list[object]:
    return [
        orjson.loads(line[6:])
        for frame in frames
        for line in frame.split(b"\n")
        if line.startswith(b"data: ") and b"event: gateway.gap" not in frame
    ]


async def test_fan_out_to_every_local_subscriber_with_one_upstream(hub, publisher, redis_client):
    subs = [await hub.join(("orders",), _factory(("orders",))) for _ in range(3)]
    assert (await redis_client.pubsub_numsub("orders")) == [(b"orders", 1)]
    await publisher.publish("orders", {"n": 1})
    for sub in subs:
        assert _data(await _drain(sub, 0.3)) == [{"n": 1}]


async def test_last_leave_drops_the_upstream_subscription(hub, redis_client):
    a = await hub.join(("c",), _factory(("c",)))
    b = await hub.join(("c",), _factory(("c",)))
    hub.leave(a)
    await asyncio.sleep(0.15)
    assert (await redis_client.pubsub_numsub("c")) == [(b"c", 1)]
    hub.leave(b)
    await asyncio.sleep(0.15)
    assert (await redis_client.pubsub_numsub("c")) == [(b"c", 0)]
    assert hub.channel_count() == 0


async def test_rejoin_within_the_delay_keeps_the_upstream(hub, redis_client):
    hub.leave(await hub.join(("k",), _factory(("k",))))
    again = await hub.join(("k",), _factory(("k",)))
    await asyncio.sleep(0.15)
    assert (await redis_client.pubsub_numsub("k")) == [(b"k", 1)]
    hub.leave(again)


async def test_join_starts_at_the_channel_head(hub, publisher):
    ids = await publisher.publish_many("h", [1, 2])
    sub = await hub.join(("h",), _factory(("h",)))
    assert sub.ids["h"] == ids[-1]


async def test_a_missed_announcement_is_recovered_from_history(hub, publisher, redis_client):
    sub = await hub.join(("r",), _factory(("r",)))
    await publisher.publish("r", {"n": 1})
    # Written to history without an announcement, as if pub/sub had dropped it.
    key = stream_key("r")
    prev = (await redis_client.xrevrange(key, count=1))[0][0].decode()
    await redis_client.xadd(key, {"p": prev, "e": "", "d": b'{"n":2}'})
    await publisher.publish("r", {"n": 3})
    assert _data(await _drain(sub, 0.3)) == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_history_that_no_longer_covers_the_hole_is_signalled(hub, publisher, redis_client):
    sub = await hub.join(("g",), _factory(("g",)))
    await publisher.publish("g", {"n": 1})
    await redis_client.delete(stream_key("g"))  # history lost (e.g. Redis restarted empty)
    await publisher.publish("g", {"n": 2})
    frames = await _drain(sub, 0.3)
    assert any(b"event: gateway.gap" in f for f in frames)
    assert _data(frames) == [{"n": 1}, {"n": 2}]


async def test_reconnect_recovers_everything_published_meanwhile(hub, broker, publisher):
    sub = await hub.join(("rc",), _factory(("rc",)))
    await publisher.publish("rc", {"n": 0})
    broker.unsubscribe("rc")  # simulate the feed going quiet while Redis keeps taking writes
    await asyncio.sleep(0.05)
    await publisher.publish_many("rc", [{"n": n} for n in range(1, 6)])
    await hub.on_reconnected()
    await asyncio.sleep(0.1)
    await publisher.publish("rc", {"n": 6})
    assert _data(await _drain(sub, 0.3)) == [{"n": n} for n in range(7)]


async def test_a_recovery_for_some_channels_reads_only_theirs(hub, broker, publisher):
    """A cluster shard's move or reconnect recovers that shard's channels, not every one."""
    subs = {c: await hub.join((c,), _factory((c,))) for c in ("moved", "stayed")}
    for channel in subs:
        broker.unsubscribe(channel)  # both feeds quiet while Redis keeps taking writes
    await asyncio.sleep(0.05)
    for channel in subs:
        await publisher.publish(channel, {"on": channel})
    await hub.on_reconnected(["moved"])
    assert _data(await _drain(subs["moved"], 0.3)) == [{"on": "moved"}]
    assert _data(await _drain(subs["stayed"], 0.1)) == []


async def test_a_publish_between_the_two_recovery_reads_is_no_gap(
    hub, broker, publisher, monkeypatch
):
    """Recovery reads what follows our last id, then (finding nothing) the stream's head. A
    publish landing between the two makes the head newer than ours: read again, no gap."""
    sub = await hub.join(("race",), _factory(("race",)))
    await publisher.publish("race", {"n": 0})
    await asyncio.sleep(0.1)  # delivered: recovery starts from it
    read, raced = broker.history, []

    async def history_then_publish(channel: str, after: str, count: int) -> list:
        entries = await read(channel, after, count)
        if not raced:
            raced.append(await publisher.publish(channel, {"n": 1}))
        return entries

    monkeypatch.setattr(broker, "history", history_then_publish)
    await hub.on_reconnected()
    frames = await _drain(sub, 0.3)
    assert raced and not any(b"event: gateway.gap" in f for f in frames)
    assert _data(frames) == [{"n": 0}, {"n": 1}]


async def test_raw_publish_reaches_subscribers(hub, redis_client):
    sub = await hub.join(("raw",), _factory(("raw",)))
    await redis_client.publish("raw", b'{"plain":\n true}')
    await redis_client.publish("raw", b"not json")
    frames = await _drain(sub, 0.3)
    assert frames == [b'id: 0-0\ndata: {"plain":true}\n\n']


async def test_keepalives_go_only_to_idle_streams(broker):
    hub = Hub(broker, unsubscribe_delay=0.05, replay_max=100)
    sub = await hub.join(("ka",), _factory(("ka",)))
    beat = asyncio.create_task(hub.run_heartbeat(0.05))
    frames = await _drain(sub, 0.2)
    beat.cancel()
    await hub.close()
    assert frames and all(f == b": keepalive\n\n" for f in frames)


async def test_drain_closes_every_stream_within_the_window(hub):
    subs = [await hub.join(("d",), _factory(("d",))) for _ in range(5)]
    hub.drain(0.1)
    await asyncio.sleep(0.2)
    assert all(s.close_reason == "shutdown" for s in subs) and hub.draining


def _only_multiples_of_3(event) -> bool:
    return orjson.loads(event.data)["n"] % 3 == 0


async def test_a_filtered_subscription_buffers_only_what_it_accepts(hub, publisher):
    """Subscription.accepts is asked before the push: what a subscriber will not see never counts
    against its buffer (2 messages here, 6 published, 2 accepted: not closed as slow)."""
    limits = {"max_messages": 2, "max_bytes": 1 << 20}
    sub = await hub.join(
        ("f",), lambda heads: Subscription(("f",), heads, **limits, accepts=_only_multiples_of_3)
    )
    for n in range(6):
        await publisher.publish("f", {"n": n})
    await asyncio.sleep(0.2)  # every message fanned out, nothing drained yet
    assert sub.close_reason is None
    assert _data(await _drain(sub, 0.2)) == [{"n": 0}, {"n": 3}]


async def test_a_filtered_subscription_that_receives_nothing_gets_keepalives(broker, publisher):
    hub = Hub(broker, unsubscribe_delay=0.05, replay_max=100)
    sub = await hub.join(
        ("busy",),
        lambda heads: Subscription(
            ("busy",), heads, max_messages=10, max_bytes=1 << 20, accepts=lambda e: False
        ),
    )
    beat = asyncio.create_task(hub.run_heartbeat(0.05))
    for n in range(12):  # the channel stays busy all along, with nothing this subscriber sees
        await publisher.publish("busy", {"n": n})
        await asyncio.sleep(0.02)
    frames = await _drain(sub, 0.05)
    beat.cancel()
    await hub.close()
    assert len(frames) >= 2 and all(f == b": keepalive\n\n" for f in frames)
