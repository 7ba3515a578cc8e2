"""Who is on a channel, over every replica: stream counts, token subjects, join/leave events.

The hub tells :class:`Presence` of every stream that joins or leaves (it is the hub's watcher).
That costs a few dict updates; nothing waits for Redis on the way in or out. One task per process
then writes what changed (:mod:`gateway.presence_store`):

* channels whose counts changed are written after a short coalescing delay (``FLUSH_DELAY``), one
  script call per channel however many streams came or went meanwhile - at most one Redis call per
  connect or disconnect, far fewer in a reconnect storm;
* every channel this replica holds streams on is rewritten every third of ``presence_ttl``, which
  keeps its fields alive; a replica that dies stops that, and drops out within ``presence_ttl``.

Join/leave events: a stream whose token has a ``sub`` announces ``gateway.join`` on each of its
channels when it opens and ``gateway.leave`` when it ends. The changes of one flush go to every
replica as one control message (:mod:`gateway.control`); each pushes them into its own streams that
asked with ``?presence=1``. They are signals, not history: never stored, never replayed, carrying
the stream's current position as their id (like raw messages).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import orjson

from gateway.control import Control
from gateway.errors import BrokerUnavailable
from gateway.events import Event
from gateway.hub import Hub
from gateway.presence_store import PresenceStore
from gateway.subscription import Subscription
from publisher.wire import ZERO_ID

__all__ = ["FLUSH_DELAY", "MAX_PENDING_CHANGES", "Presence"]

log = logging.getLogger("gateway.presence")

FLUSH_DELAY = 0.05  # seconds: connects and disconnects within it share one write per channel
MAX_PENDING_CHANGES = 10_000  # join/leave signals held while Redis is away; older ones dropped
WRITE_BATCH = 64  # concurrent script calls per flush (the command pool has 64 by default)
RETRY_DELAY = 1.0


class Presence:
    def __init__(
        self, hub: Hub, store: PresenceStore, control: Control, *, ttl: float, events: bool
    ) -> None:
        self._hub = hub
        self.store = store
        self._control = control
        self._refresh = ttl / 3
        self._events = events
        self._streams: Counter[str] = Counter()  # channel -> this replica's streams
        self._subjects: dict[str, Counter[str]] = {}  # channel -> subject -> streams
        self._changed: dict[str, set[str]] = {}  # channel -> subjects not yet written
        self._listeners: dict[str, set[Subscription]] = {}  # channel -> ?presence=1 streams
        self._dirty: set[str] = set()
        self._changes: list[list[str]] = []  # [kind, channel, subject] not yet announced
        self._wake = asyncio.Event()
        hub.watcher = self
        control.on("presence", self._on_changes)

    # -- the hub's watcher (synchronous, on every connect and disconnect) --------------------

    def joined(self, subscription: Subscription) -> None:
        self._update(subscription, 1, "join")
        if subscription.presence:
            for channel in subscription.channels:
                self._listeners.setdefault(channel, set()).add(subscription)

    def left(self, subscription: Subscription) -> None:
        self._update(subscription, -1, "leave")
        if subscription.presence:
            for channel in subscription.channels:
                listeners = self._listeners.get(channel)
                if listeners is not None:
                    listeners.discard(subscription)
                    if not listeners:
                        del self._listeners[channel]

    def _update(self, subscription: Subscription, delta: int, kind: str) -> None:
        subject = subscription.subject
        for channel in subscription.channels:
            self._streams[channel] += delta
            if subject is not None:
                self._subjects.setdefault(channel, Counter())[subject] += delta
                self._changed.setdefault(channel, set()).add(subject)
                if self._events and len(self._changes) < MAX_PENDING_CHANGES:
                    self._changes.append([kind, channel, subject])
        self._dirty.update(subscription.channels)
        self._wake.set()

    # -- writing to Redis ----------------------------------------------------------------------

    async def run(self) -> None:
        """The process' one presence task: coalesced writes, periodic refresh, announcements."""
        loop = asyncio.get_running_loop()
        refresh_at = loop.time() + self._refresh
        while True:
            try:
                async with asyncio.timeout(max(0.0, refresh_at - loop.time())):
                    await self._wake.wait()
                await asyncio.sleep(FLUSH_DELAY)
            except TimeoutError:
                pass
            self._wake.clear()
            if loop.time() >= refresh_at:
                refresh_at = loop.time() + self._refresh
                self._dirty.update(channel for channel, n in self._streams.items() if n > 0)
            try:
                await self.flush()
            except BrokerUnavailable as exc:
                log.warning("presence not written, retrying: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()
            except Exception:  # a bug must not end presence for good: log it and go on
                log.exception("presence flush failed")
                await asyncio.sleep(RETRY_DELAY)

    async def close(self) -> None:
        """On the way out, after the streams ended: take this replica out of the counts now
        instead of after the TTL. Bounded; Redis being away only leaves it to the TTL."""
        try:
            async with asyncio.timeout(1.0):
                await self.flush()
        except (BrokerUnavailable, TimeoutError) as exc:
            log.info("presence left to expire (%s)", exc or "timeout")

    async def flush(self) -> None:
        """Write every changed channel and announce the changes. Raises BrokerUnavailable (what
        was not written stays to be written)."""
        channels = list(self._dirty)
        self._dirty.clear()
        for start in range(0, len(channels), WRITE_BATCH):
            batch = channels[start : start + WRITE_BATCH]
            results = await asyncio.gather(
                *(self._write(channel) for channel in batch), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                failed = [c for c, r in zip(batch, results, strict=True) if r in errors]
                self._dirty.update(failed, channels[start + WRITE_BATCH :])
                raise errors[0]
        await self._announce()

    async def _write(self, channel: str) -> None:
        """The channel's stream count, and only the subjects that changed: a subject's field
        lives as long as the replica's count field, so a refresh rewrites one field, not all."""
        changed = self._changed.pop(channel, set())
        counts = self._subjects.get(channel, Counter())
        present = {subject: counts[subject] for subject in changed if counts[subject] > 0}
        gone = [subject for subject in changed if counts[subject] <= 0]
        try:
            await self.store.write(channel, self._streams.get(channel, 0), present, gone)
        except BaseException:
            self._changed.setdefault(channel, set()).update(changed)
            raise
        self._forget(channel, gone)

    def _forget(self, channel: str, gone: list[str]) -> None:
        """Bounded memory: what Redis no longer holds leaves the local tables (a stream that
        joined meanwhile has re-marked its channel and subject, so nothing is lost)."""
        counts = self._subjects.get(channel)
        if counts is not None:
            for subject in gone:
                if counts[subject] <= 0:
                    del counts[subject]
            if not counts:
                del self._subjects[channel]
        if self._streams.get(channel, 0) <= 0 and channel not in self._changed:
            self._streams.pop(channel, None)

    # -- join / leave events ------------------------------------------------------------------

    async def _announce(self) -> None:
        if not self._changes:
            return
        changes, self._changes = self._changes, []
        try:
            await self._control.send("presence", changes=changes)
        except BrokerUnavailable:
            self._changes[:0] = changes[-MAX_PENDING_CHANGES:]
            raise

    def _on_changes(self, message: dict[str, Any]) -> None:
        for kind, channel, subject in message["changes"]:
            listeners = self._listeners.get(channel)
            if not listeners or kind not in ("join", "leave"):
                continue
            data = orjson.dumps({"channel": channel, "subject": subject})
            anchor = self._hub.last_id(channel) or ZERO_ID
            event = Event(channel, anchor, None, f"gateway.{kind}", data)
            for subscription in listeners:
                subscription.push(event)
