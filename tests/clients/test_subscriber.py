"""Subscriber / AsyncSubscriber against real gateway processes and a real redis-server: gateway
restarts, replica switches and history truncation, with thousands of messages checked exactly."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from typing import Literal

import jwt
import pytest

from publisher import (
    AsyncPublisher,
    AsyncSubscriber,
    Gap,
    GapError,
    HistoryLimits,
    Message,
    Publisher,
    Rejected,
    Subscriber,
)
from tests.clients.conftest import FAST
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

MESSAGES = 3000
# History long enough for everything a test publishes while its subscriber is away: a gap there
# would be the right answer, but these tests check the gap-free path.
LONG = HistoryLimits(max_len=10_000)


def _wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_subscriber_survives_a_same_port_restart_with_nothing_lost_or_repeated(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    gateway = shared_gateway
    published: list[str] = []
    received: list[Message] = []
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with Publisher(redis_server.url, history=LONG) as publisher:
                _wait_until(lambda: len(received) > 0)
                for seq in range(MESSAGES):
                    published.append(publisher.publish("cl-restart", {"seq": seq}))
                    if seq == MESSAGES // 3:
                        gateway.stop()  # SIGTERM: drains, farewell retry:, port closed
                    if seq == MESSAGES // 2:
                        gateway.start()  # same port: the subscriber reconnects by itself
                    if seq % 100 == 0:
                        time.sleep(0.01)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    publisher = Publisher(redis_server.url, history=LONG)
    first = publisher.publish("cl-restart", {"seq": -1})
    producer = threading.Thread(target=produce)
    sub = Subscriber(gateway.url, "cl-restart", last_event_id="0-0", retry_max=1, read_timeout=10)
    with sub:
        producer.start()
        try:
            for item in sub:
                assert isinstance(item, Message), (item, len(received))
                received.append(item)
                if len(received) == MESSAGES + 1 or errors:
                    break
        finally:
            producer.join(60)
    publisher.close()
    assert not errors
    assert [m.id for m in received] == [first, *published]
    assert [m.data["seq"] for m in received] == list(range(-1, MESSAGES))
    assert sub.last_event_id == published[-1]


@pytest.mark.parametrize("format", ["ndjson", "sse"])
async def test_async_subscriber_switches_replica_on_a_multi_channel_stream(
    redis_server: RedisServer,
    start_gateway: Callable[..., GatewayProcess],
    shared_gateway: GatewayProcess,
    format: Literal["sse", "ndjson"],
) -> None:
    first = start_gateway(redis_server.url, env=FAST)
    second = shared_gateway
    channels = (f"cl-switch-{format}-a", f"cl-switch-{format}-b")
    published: dict[str, list[str]] = {channel: [] for channel in channels}
    received: dict[str, list[int]] = {channel: [] for channel in channels}
    async with AsyncPublisher(redis_server.url, history=LONG) as publisher:
        start = ",".join([f"{c}={await publisher.publish(c, {'seq': -1})}" for c in channels])

        async def produce() -> None:
            for seq in range(MESSAGES):
                channel = channels[seq % 2]
                published[channel].append(await publisher.publish(channel, {"seq": seq}))
                if seq == MESSAGES // 3:
                    await asyncio.to_thread(first.kill)  # SIGKILL: no farewell, port refuses
                if seq % 100 == 0:
                    await asyncio.sleep(0.01)

        urls = [first.url, second.url]
        sub = AsyncSubscriber(urls, channels, last_event_id=start, format=format, read_timeout=10)
        async with sub:
            producer = asyncio.create_task(produce())
            async with asyncio.timeout(90):
                async for item in sub:
                    assert isinstance(item, Message), item
                    received[item.channel].append(item.data["seq"])
                    if sum(map(len, received.values())) == MESSAGES:
                        break
            await producer
    for index, channel in enumerate(channels):
        assert received[channel] == list(range(index, MESSAGES, 2))
    last = sub.last_event_id or ""
    assert set(dict(part.split("=") for part in last.split(","))) == set(channels)
    assert {published[c][-1] for c in channels} == set(
        dict(part.split("=") for part in last.split(",")).values()
    )


def test_gap_is_yielded_after_history_truncation_then_delivery_continues(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    gateway = shared_gateway
    small = HistoryLimits(max_len=5)  # what a producer configured with a short history writes
    with Publisher(redis_server.url, history=small) as publisher:
        seen = publisher.publish("cl-gap", {"seq": 0})
        sub = Subscriber(gateway.url, "cl-gap", last_event_id=seen, retry_max=1, read_timeout=10)
        with sub:
            publisher.publish("cl-gap", {"seq": 1})
            assert _next(sub).data == {"seq": 1}
            gateway.stop()
            # While the gateway is down, far more than history keeps (trimmed by whole nodes).
            ids = publisher.publish_many("cl-gap", [{"seq": n} for n in range(2, 602)])
            gateway.start()
            gap = _next(sub)
            assert isinstance(gap, Gap), gap
            assert (gap.channel, gap.reason) == ("cl-gap", "truncated")
            assert gap.resumed_at in ids
            after = _next(sub)
            assert isinstance(after, Message)
            assert after.id == ids[ids.index(gap.resumed_at) + 1]  # contiguous from resumed_at


def test_strict_subscriber_raises_gap_error_and_can_go_on(
    redis_server: RedisServer, shared_gateway: GatewayProcess
) -> None:
    gateway = shared_gateway
    with Publisher(redis_server.url) as publisher:
        publisher.publish("cl-strict", {"seq": 0})
        sub = Subscriber(gateway.url, "cl-strict", last_event_id="not-an-id", strict=True)
        with sub:
            with pytest.raises(GapError) as caught:
                next(sub)
            assert caught.value.gap.reason == "malformed"
            publisher.publish("cl-strict", {"seq": 1})
            assert _next(sub).data == {"seq": 1}


def test_subscriber_does_not_retry_a_4xx(shared_gateway: GatewayProcess) -> None:
    channels = [f"cl-many-{n}" for n in range(33)]  # the gateway allows 32 per stream
    with Subscriber(shared_gateway.url, channels) as sub, pytest.raises(Rejected) as caught:
        next(sub)
    assert caught.value.status == 400
    assert caught.value.body["error"] == "too_many_channels"


def _next(sub: Subscriber) -> Message | Gap:
    item = next(sub)
    assert isinstance(item, Message | Gap)
    return item


def test_bearer_token_is_sent_and_a_refused_one_is_not_retried(
    redis_server: RedisServer, start_gateway: Callable[..., GatewayProcess]
) -> None:
    secret = secrets.token_urlsafe(48)
    gateway = start_gateway(redis_server.url, env={"GATEWAY_JWT_SECRET": secret})
    claims = {"sse": {"subscribe": ["cl-auth.*"]}, "exp": int(time.time()) + 600}
    token = jwt.encode(claims, secret, algorithm="HS256")
    with Publisher(redis_server.url) as publisher:
        start = publisher.publish("cl-auth.orders", {"n": 0})
        with Subscriber(gateway.url, "cl-auth.orders", last_event_id=start, token=token) as sub:
            publisher.publish("cl-auth.orders", {"n": 1})
            assert _next(sub).data == {"n": 1}
    with Subscriber(gateway.url, "cl-auth.orders") as sub, pytest.raises(Rejected) as caught:
        next(sub)
    assert caught.value.status == 401
    with Subscriber(gateway.url, "cl-other", token=token) as sub, pytest.raises(Rejected) as caught:
        next(sub)
    assert caught.value.status == 403
