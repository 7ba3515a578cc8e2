"""Opening a stream for a subscription: where it starts, what it replays, how it ends.

Divergences from sse-starlette, on purpose:

* No per-connection ping task, send-timeout scope or shutdown watcher (see gateway.stream). The
  hub runs one process-wide heartbeat that pushes a shared comment frame into every idle stream
  (cheaper than a timer per connection) and one write watchdog.
* Frames are encoded once per message by the hub, and whatever is waiting for a client is
  coalesced into one write.
* Shutdown is ours: on SIGTERM the hub closes streams at random moments over ``drain_window``,
  each with a short random ``retry:`` hint, so clients do not all reconnect in the same second.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable

from gateway.broker.base import Broker
from gateway.cursor import parse_last_event_id
from gateway.events import SSE, Event, StreamFormat, durable_event
from gateway.hub import Hub
from gateway.metrics import EVENTS_REPLAYED, RESUMES
from gateway.ndjson import NDJSON, wants_ndjson
from gateway.replay import read_missed
from gateway.settings import Settings
from gateway.stream import StreamResponse
from gateway.subscription import Gap, Item, Subscription
from publisher.wire import parse_stream_id

__all__ = ["StreamPlan", "open_stream"]

log = logging.getLogger("gateway.sse")

# sse-starlette's set: no caching, and no buffering in nginx-style proxies.
HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class StreamPlan:
    """Where a new stream starts: the live head of each channel when it joined, the positions to
    replay from, and the gaps to report before anything else."""

    __slots__ = ("expiry", "gaps", "heads", "resume")

    def __init__(self) -> None:
        self.heads: dict[str, str] = {}
        self.resume: dict[str, str] = {}
        self.gaps: list[Gap] = []
        self.expiry: asyncio.TimerHandle | None = None


async def open_stream(
    hub: Hub,
    channels: tuple[str, ...],
    last_event_id: str | None,
    settings: Settings,
    accept: str | None = None,
    *,
    expires_at: float | None = None,
    subject: str | None = None,
    presence: bool = False,
    renderer: StreamFormat | None = None,
    accepts: Callable[[Event], bool] | None = None,
) -> StreamResponse:
    """Join the hub at the client's positions; answer with the stream. Raises BrokerUnavailable.

    ``Accept: application/x-ndjson`` gets the same stream as NDJSON lines (:mod:`gateway.ndjson`).
    ``renderer`` overrides that choice: another protocol's format on the same stream (Mercure's).
    ``accepts`` filters what this subscriber sees, live and replayed (Subscription.accepts;
    Mercure's topics and rights: gateway.mercure.stream).
    """
    if renderer is None:
        renderer = NDJSON if wants_ndjson(accept) else SSE
    parsed = parse_last_event_id(last_event_id, channels)
    plan = StreamPlan()
    plan.resume = dict(parsed.positions)

    def make_subscription(heads: dict[str, str]) -> Subscription:
        plan.heads = heads
        positions = {channel: parsed.positions.get(channel, heads[channel]) for channel in channels}
        return Subscription(
            channels,
            positions,
            max_messages=settings.subscriber_buffer_messages,
            max_bytes=settings.subscriber_buffer_bytes,
            renderer=renderer,
            subject=subject,
            presence=presence,
            accepts=accepts,
        )

    subscription = await hub.join(channels, make_subscription)
    if expires_at is not None:
        plan.expiry = _close_at(subscription, expires_at)
    if parsed.malformed:
        RESUMES.labels("malformed").inc()
        plan.gaps = [Gap(channel, "malformed", plan.heads[channel]) for channel in channels]
    opening = subscription.renderer.preamble(settings.retry_ms, subscription.position)
    if plan.gaps:
        opening += subscription.render(list(plan.gaps))
    replay = None
    if plan.resume:
        replay = functools.partial(_replay_all, hub.broker, subscription, plan, settings)
    response = StreamResponse(
        hub,
        subscription,
        opening=opening,
        replay=replay,
        retry_ms=settings.retry_ms,
        headers=HEADERS,
        nagle=not settings.tcp_nodelay,
    )
    response.on_close.append(functools.partial(_left, hub, subscription, plan))
    return response


def _left(hub: Hub, subscription: Subscription, plan: StreamPlan) -> None:
    if plan.expiry is not None:
        plan.expiry.cancel()
    hub.leave(subscription)


async def _replay_all(
    broker: Broker, subscription: Subscription, plan: StreamPlan, settings: Settings
) -> AsyncIterator[bytes]:
    for channel, after in plan.resume.items():
        head = plan.heads[channel]
        async for chunk in _replay(broker, subscription, channel, after, head, settings):
            yield chunk


async def _replay(
    broker: Broker,
    subscription: Subscription,
    channel: str,
    after: str,
    head: str,
    settings: Settings,
) -> AsyncIterator[bytes]:
    replay = await read_missed(broker, channel, after, head, settings.replay_max)
    RESUMES.labels(replay.gap or "resumed").inc()
    EVENTS_REPLAYED.inc(len(replay.entries))
    items: list[Item] = []
    if replay.gap is not None and replay.reset_to is not None:
        items.append(Gap(channel, replay.gap, replay.reset_to))
    for entry in replay.entries:
        key = parse_stream_id(entry.id)
        event = durable_event(channel, entry.id, key, entry.event, entry.data) if key else None
        if event is not None and (subscription.accepts is None or subscription.accepts(event)):
            items.append(event)
        if len(items) >= 500:
            yield subscription.render(items)
            items = []
    if items:
        yield subscription.render(items)


def _close_at(subscription: Subscription, expires_at: float) -> asyncio.TimerHandle:
    """The token's rights end at its ``exp``: close the stream then. One timer per stream, set
    once, so nothing is checked per message."""
    delay = max(0.0, expires_at - time.time())
    return asyncio.get_running_loop().call_later(delay, subscription.close, "expired")
