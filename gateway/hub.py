"""Channel -> local subscribers, and the per-channel continuity that makes delivery exact.

The hub takes one upstream subscription per channel on the first local subscriber and drops it
(after a short re-check) when the last one leaves. Every announcement names its predecessor
(:mod:`publisher.wire`), so the hub knows the instant its feed skipped something - a Redis
reconnect, a pub/sub message lost in a buffer - and recovers the missing entries from history
before delivering anything newer. If history no longer holds them, every subscriber of the
channel gets an explicit gap event instead of a silent hole.

Fan-out never awaits a client: :meth:`Subscription.push` is synchronous and bounded.
The hub knows nothing of Redis; it speaks to a :class:`~gateway.broker.base.Broker`.

Direct writes: a single-channel stream served by the gateway's own protocol, in step with its
channel (nothing waiting, replay done, socket writable, cursor not ahead), is moved into the
channel's ``direct`` table: its connection's ``write`` per stream format. Each event is then
rendered and chunk-framed once per format and the same bytes are handed to every such stream in
one loop, with no call into its subscription. Whatever needs the subscription (a gap, a
keepalive, an item pushed by another feature, a paused socket) first moves it back
(:meth:`Hub.demote`), which brings its cursor up to the channel's: every event up to there was
written to it.

Filtered subscriptions (``Subscription.accepts``: Mercure's) are never written directly; each
event is pushed only if ``accepts`` takes it, so what one will not see never fills its buffer nor
keeps it from the heartbeat. Channels without them pay one empty-set test per event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Protocol

from gateway.broker.base import Broker, HistoryEntry
from gateway.errors import BrokerUnavailable
from gateway.events import KEEPALIVE, Event, StreamFormat, durable_event, raw_event
from gateway.metrics import RECOVERIES, TALLY, observe_delivery_lag
from gateway.stream import chunk_frame
from gateway.subscription import Gap, Subscription
from publisher.wire import ZERO_ID, decode_envelope, parse_stream_id

Write = Callable[[bytes], object]

__all__ = ["Hub", "HubWatcher"]

log = logging.getLogger("gateway.hub")

PENDING_MAX = 100_000


class ChannelState:
    """One channel's upstream subscription, its subscribers and the last id it delivered."""

    __slots__ = (
        "active",
        "direct",
        "filtered",
        "joining",
        "last_id",
        "last_key",
        "name",
        "opened",
        "others",
        "pending",
        "recovering",
        "release_handle",
        "resync_again",
        "subscribers",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribers: set[Subscription] = set()
        self.others: set[Subscription] = set()  # subscribers not written to directly
        self.filtered: set[Subscription] = set()  # pushed only what their ``accepts`` lets in
        self.direct: dict[StreamFormat, dict[Subscription, Write]] = {}
        self.active = False  # an event went out since the last heartbeat
        self.last_id = ZERO_ID
        self.last_key = (0, 0)
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.opened.add_done_callback(_retrieve)
        # Payloads held back while the channel opens or recovers; None while live.
        self.pending: list[bytes] | None = []
        self.joining = 0
        self.recovering = False
        self.resync_again = False
        self.release_handle: asyncio.TimerHandle | None = None

    def advance(self, entry_id: str, key: tuple[int, int]) -> None:
        self.last_id, self.last_key = entry_id, key


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # mark it retrieved: joiners may all have given up already


class HubWatcher(Protocol):
    """Told of every subscription that joins or leaves (gateway.presence counts them)."""

    def joined(self, subscription: Subscription) -> None: ...

    def left(self, subscription: Subscription) -> None: ...


class Hub:
    def __init__(self, broker: Broker, *, unsubscribe_delay: float, replay_max: int) -> None:
        self._broker = broker
        self._unsubscribe_delay = unsubscribe_delay
        self._replay_max = replay_max
        self._channels: dict[str, ChannelState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscriptions: set[Subscription] = set()
        self.draining = False
        self.watcher: HubWatcher | None = None
        # Pub/sub messages for names that are no channel of ours: the gateway's control channel
        # (gateway.control). Only looked at on that miss, so the hot path pays nothing for it.
        self.on_other: Callable[[str, bytes], None] | None = None
        broker.set_handler(self)

    @property
    def broker(self) -> Broker:
        return self._broker

    def channel_count(self) -> int:
        return len(self._channels)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.subscribers) if state else 0

    def subscribers_of(self, channel: str) -> list[Subscription]:
        state = self._channels.get(channel)
        return list(state.subscribers) if state else []

    def last_id(self, channel: str) -> str | None:
        state = self._channels.get(channel)
        return state.last_id if state else None

    # -- joining and leaving -----------------------------------------------------------------

    async def join(
        self,
        channels: tuple[str, ...],
        make_subscription: Callable[[dict[str, str]], Subscription],
    ) -> Subscription:
        """Open every channel upstream, then register a subscription built at their positions.

        The positions are read and the subscription registered with no await in between, so it
        receives every event after them live. Raises BrokerUnavailable.
        """
        live = [self._live(channel) for channel in channels]
        if all(live):  # the usual case under load: no future, gather or shield per join
            return self._register([state for state in live if state], make_subscription)
        states = [self._pin(channel) for channel in channels]
        try:
            await asyncio.gather(*(asyncio.shield(state.opened) for state in states))
            return self._register(states, make_subscription)
        finally:
            for state in states:
                state.joining -= 1
                self._maybe_release(state)

    def _live(self, channel: str) -> ChannelState | None:
        state = self._channels.get(channel)
        if state is not None and state.opened.done() and state.opened.exception() is None:
            return state
        return None

    def _register(
        self,
        states: list[ChannelState],
        make_subscription: Callable[[dict[str, str]], Subscription],
    ) -> Subscription:
        subscription = make_subscription({s.name: s.last_id for s in states})
        for state in states:
            state.subscribers.add(subscription)
            (state.others if subscription.accepts is None else state.filtered).add(subscription)
        self.subscriptions.add(subscription)
        if self.watcher is not None:
            self.watcher.joined(subscription)
        return subscription

    def leave(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:  # leave() may run twice for one stream
            self.subscriptions.discard(subscription)
            if self.watcher is not None:
                self.watcher.left(subscription)
        for channel in subscription.channels:
            state = self._channels.get(channel)
            if state is not None:
                self.demote(subscription)
                state.subscribers.discard(subscription)
                state.others.discard(subscription)
                state.filtered.discard(subscription)
                self._maybe_release(state)

    def promote(self, subscription: Subscription, fmt: StreamFormat, write: Write) -> bool:
        """Write to this single-channel subscription directly from now on, if it is in step with
        its channel (its cursor is not ahead: every later event is new to it)."""
        state = self._channels.get(subscription.channels[0])
        if (
            state is None
            or subscription not in state.others
            or subscription.cursor_key(state.name) > state.last_key
        ):
            return False
        state.others.discard(subscription)
        state.direct.setdefault(fmt, {})[subscription] = write
        subscription.direct_state = state
        return True

    def demote(self, subscription: Subscription) -> None:
        """Back to :meth:`Subscription.push`, with its cursor where the direct writes left it."""
        state = subscription.direct_state
        if not isinstance(state, ChannelState):
            return
        subscription.direct_state = None
        for writes in state.direct.values():
            writes.pop(subscription, None)
        subscription.catch_up(state.name, state.last_id, state.last_key)
        if subscription in state.subscribers:
            state.others.add(subscription)

    def _pin(self, channel: str) -> ChannelState:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = ChannelState(channel)
            self._spawn(self._activate(state))
        state.joining += 1
        return state

    async def _activate(self, state: ChannelState) -> None:
        try:
            await self._broker.subscribe(state.name)
            head = await self._broker.last_id(state.name)
        except BrokerUnavailable as exc:
            self._forget(state)
            state.opened.set_exception(exc)
            return
        state.advance(head, parse_stream_id(head) or (0, 0))
        state.opened.set_result(None)
        self._flush(state)

    def _maybe_release(self, state: ChannelState) -> None:
        if state.subscribers or state.joining or state.release_handle is not None:
            return
        loop = asyncio.get_running_loop()
        state.release_handle = loop.call_later(self._unsubscribe_delay, self._release, state)

    def _release(self, state: ChannelState) -> None:
        state.release_handle = None
        if state.subscribers or state.joining:
            return
        self._forget(state)

    def _forget(self, state: ChannelState) -> None:
        if self._channels.get(state.name) is state:
            del self._channels[state.name]
            self._broker.unsubscribe(state.name)

    # -- live messages (BrokerHandler) -------------------------------------------------------

    def on_message(self, channel: str, payload: bytes) -> None:
        state = self._channels.get(channel)
        if state is None:
            if self.on_other is not None:
                self.on_other(channel, payload)
            return
        TALLY.received += 1
        if state.pending is None:
            self._process(state, payload)
        elif len(state.pending) < PENDING_MAX:
            state.pending.append(payload)
        else:  # everything durable is in history: drop the backlog and recover it from there
            state.pending.clear()
            state.resync_again = True

    def _process(self, state: ChannelState, payload: bytes) -> None:
        envelope = decode_envelope(payload)
        if envelope is None:
            event = raw_event(state.name, state.last_id, payload)
            if event is not None:
                self._fanout(state, event)
            return
        key = parse_stream_id(envelope.id)
        if key is None or key <= state.last_key:
            return  # malformed, or already delivered (overlap with a recovery read)
        if envelope.prev != state.last_id:
            # Our feed skipped something: hold this back and fetch the hole from history.
            state.pending = [payload]
            self._spawn(self._recover(state))
            return
        state.advance(envelope.id, key)
        event = durable_event(state.name, envelope.id, key, envelope.event, envelope.data)
        if event is not None:
            self._fanout(state, event)
            observe_delivery_lag(envelope.id)

    def _fanout(self, state: ChannelState, event: Event) -> None:
        TALLY.delivered += len(state.subscribers)  # a plain int: no metric call per subscriber
        state.active = True
        for fmt, writes in state.direct.items():
            if writes:
                chunk = chunk_frame(fmt.event(event, None))  # once per format, not per stream
                # A snapshot: a write may pause its transport, which demotes that stream.
                for write in tuple(writes.values()):
                    write(chunk)
        if state.others:
            for subscription in tuple(state.others):
                subscription.push(event)
        if state.filtered:  # never written directly: the shared bytes are not theirs to see
            for subscription in tuple(state.filtered):
                accepts = subscription.accepts
                if accepts is not None and accepts(event):
                    subscription.push(event)

    def _flush(self, state: ChannelState) -> None:
        """Go live: process what was held back, unless that starts another recovery."""
        held, state.pending = state.pending or [], None
        for index, payload in enumerate(held):
            self._process(state, payload)
            if state.pending is not None:  # a new recovery took over; keep the rest for it
                state.pending.extend(held[index + 1 :])
                return

    # -- recovery ----------------------------------------------------------------------------

    async def on_reconnected(self, channels: Collection[str] | None = None) -> None:
        states = (
            list(self._channels.values())
            if channels is None
            else [s for c in channels if (s := self._channels.get(c)) is not None]
        )
        for state in states:
            if state.opened.done() and not state.opened.exception():
                if state.pending is None:
                    state.pending = []
                self._spawn(self._recover(state))

    async def _recover(self, state: ChannelState) -> None:
        if state.recovering:
            state.resync_again = True
            return
        state.recovering = True
        try:
            while self._channels.get(state.name) is state:
                state.resync_again = False
                if await self._recover_once(state):
                    if not state.resync_again:
                        break
                else:
                    await asyncio.sleep(random.uniform(0.2, 1.0))
        finally:
            state.recovering = False
        if self._channels.get(state.name) is state:
            self._flush(state)

    async def _recover_once(self, state: ChannelState) -> bool:
        try:
            # Live first (a no-op when already confirmed), then read what was missed.
            await self._broker.subscribe(state.name)
            entries = await self._broker.history(state.name, state.last_id, self._replay_max)
            head = None if entries else await self._broker.last_id(state.name)
        except BrokerUnavailable as exc:
            log.warning("recovering channel %s failed, retrying: %s", state.name, exc)
            return False
        if head is not None and (parse_stream_id(head) or (0, 0)) > state.last_key:
            # Nothing after ours, then a newer head: a publish landed between the two reads.
            # That is no gap; read again (announcing one here once cost a resharding test).
            state.resync_again = True
            return True
        self._deliver_recovered(state, entries, head)
        if len(entries) == self._replay_max:
            state.resync_again = True  # more than one read's worth was missed
        return True

    def _deliver_recovered(
        self, state: ChannelState, entries: list[HistoryEntry], head: str | None
    ) -> None:
        if entries and entries[0].prev != state.last_id:
            self._announce_gap(state, entries[0].prev)
        elif head is not None and head != state.last_id:
            self._announce_gap(state, head)  # the stream went back in time (lost or replaced)
        else:
            RECOVERIES.labels("recovered").inc()
        for entry in entries:
            key = parse_stream_id(entry.id)
            if key is None or key <= state.last_key:
                continue
            state.advance(entry.id, key)
            event = durable_event(state.name, entry.id, key, entry.event, entry.data)
            if event is not None:
                self._fanout(state, event)

    def _announce_gap(self, state: ChannelState, reset_to: str) -> None:
        log.warning(
            "channel %s: history no longer covers %s (it continues from %s); gap signalled",
            state.name,
            state.last_id,
            reset_to,
        )
        RECOVERIES.labels("gap").inc()
        state.advance(reset_to, parse_stream_id(reset_to) or (0, 0))
        gap = Gap(state.name, "truncated", reset_to)
        for subscription in tuple(state.subscribers):
            subscription.push(gap)

    # -- process-wide duties -----------------------------------------------------------------

    async def run_heartbeat(self, interval: float) -> None:
        """One timer for the whole process: a keepalive to every stream idle for ``interval``."""
        while True:
            await asyncio.sleep(interval)
            for subscription in list(self.subscriptions):
                direct = subscription.direct_state
                busy = isinstance(direct, ChannelState) and direct.active
                if subscription.idle and not busy:
                    subscription.push(KEEPALIVE)
                subscription.idle = True
            for state in self._channels.values():
                state.active = False

    async def run_watchdog(self, send_timeout: float) -> None:
        """One timer for the whole process instead of a timeout per write: a stream whose current
        write has waited longer than ``send_timeout`` (a stalled or vanished client) is aborted.
        Checked every quarter timeout, so it acts between 1 and 1.25 timeouts."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(send_timeout / 4)
            stuck_since = loop.time() - send_timeout
            for subscription in list(self.subscriptions):
                if 0.0 < subscription.writing_since < stuck_since:
                    subscription.abort("send_timeout")

    def drain(self, window: float) -> None:
        """Refuse new streams; close open ones at random moments spread over ``window``."""
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        for subscription in list(self.subscriptions):
            loop.call_later(random.uniform(0, window), subscription.close, "shutdown")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
