"""One client's bounded buffer and cursor.

The hub calls :meth:`Subscription.push` synchronously for every event; it never waits for the
client. Whatever is waiting becomes *one* write (natural coalescing under load, no added delay
when idle). Under the gateway's own HTTP protocol the subscription has a :class:`Sink` (the
connection, :mod:`gateway.stream`): what waits is written straight to it once the current batch
has been fanned out, while the socket takes data; a paused socket keeps it here (bounded) until
it resumes, under the hub's write watchdog. Under any other ASGI server the stream's own task
takes it (:meth:`chunks`). A single-channel subscription with nothing waiting is not pushed to at
all: the hub writes the shared bytes to its sink directly (``direct_state``, :mod:`gateway.hub`).
When the buffer overflows its message or byte limit the subscription closes itself as ``slow``:
the buffer is dropped at once, so a stalled client costs bounded memory, and nothing half-written
ever reaches its stream; it reconnects with its last id and resumes from history.

The cursor (per channel: last delivered id and its ordering key) is applied when draining, not when
pushing: an event at or below the cursor was already delivered by a history replay and is skipped.
That is what makes "subscribe live first, then read history" free of gaps and duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.cursor import format_vector
from gateway.events import SSE, Event, StreamFormat
from publisher.wire import parse_stream_id

__all__ = ["Gap", "Subscription"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Tell the client history does not cover what it missed on ``channel``; restart there."""

    channel: str
    reason: str
    reset_to: str


Item = Event | Gap | bytes


class Sink(Protocol):
    """The stream's connection, for writes that need not wait (gateway.stream.ConnectionSink)."""

    def writable(self) -> bool: ...

    def write(self, chunk: bytes) -> None:
        """Write rendered bytes (the sink frames them)."""

    def drained(self) -> None:
        """Everything waiting was written: the hub may write to this stream directly again."""

    def leave_direct(self) -> None:
        """Leave the hub's direct writes: an item is coming that needs this subscription."""

    def closed(self) -> None:
        """The subscription closed: end the stream after what is written."""

    def abort(self) -> None:
        """End the stream now (drop what the socket has not taken)."""


class Subscription:
    __slots__ = (
        "_bytes",
        "_flushing",
        "_keys",
        "_queue",
        "_waiter",
        "aborted",
        "accepts",
        "channels",
        "close_reason",
        "direct_state",
        "idle",
        "ids",
        "max_bytes",
        "max_messages",
        "multi",
        "presence",
        "renderer",
        "sink",
        "subject",
        "task",
        "writing_since",
    )

    def __init__(
        self,
        channels: tuple[str, ...],
        positions: dict[str, str],
        *,
        max_messages: int,
        max_bytes: int,
        renderer: StreamFormat = SSE,
        subject: str | None = None,
        presence: bool = False,
        accepts: Callable[[Event], bool] | None = None,
    ) -> None:
        self.channels = channels
        self.subject = subject  # the token's sub: presence and revocation by subject
        self.presence = presence  # the client asked for gateway.join / gateway.leave events
        self.renderer = renderer  # the bytes (SSE or NDJSON); the cursor logic is ours
        # Which events this subscriber may see, when not all of its channels' (Mercure's per
        # subscriber topics and rights): the hub asks before pushing, the replay before rendering.
        self.accepts = accepts
        self.multi = len(channels) > 1
        self.ids: dict[str, str] = {}
        self._keys: dict[str, tuple[int, int]] = {}
        for channel in channels:
            self.set_position(channel, positions[channel])
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        # A list, not a deque: it is only ever appended to and taken whole, and an empty deque
        # costs ~600 bytes of every idle stream.
        self._queue: list[Item] = []
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.close_reason: str | None = None
        self.idle = True
        # Set by the stream's response while it streams (gateway.stream.StreamResponse):
        self.task: asyncio.Task[None] | None = None  # the task writing to the client (ASGI)
        self.writing_since = 0.0  # loop time the current write began; 0.0 between writes
        self.aborted = False
        self.sink: Sink | None = None  # the connection, under the gateway's own protocol
        self.direct_state: object | None = None  # the hub's channel writing to the sink directly
        self._flushing = False

    # -- producer side (the hub; synchronous, never blocks) ---------------------------------

    def push(self, item: Item) -> None:
        # Runs once per subscriber per message off the direct path: size and wake-up inlined.
        if self.close_reason is not None:
            return
        sink = self.sink
        if self.direct_state is not None and sink is not None:
            sink.leave_direct()  # this item needs the cursor: take the slower path for now
        queue = self._queue
        queue.append(item)
        self._bytes += len(item.frame) if type(item) is Event else _size(item)
        self.idle = False
        if len(queue) > self.max_messages or self._bytes > self.max_bytes:
            self.close("slow")
            return
        if sink is not None:
            if not self._flushing:  # one write per batch of messages, after the batch
                self._flushing = True
                asyncio.get_running_loop().call_soon(self.flush)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def flush(self) -> None:
        """Write what is waiting to the sink, if it takes data now; else it stays (bounded) until
        the sink resumes and calls this again."""
        self._flushing = False
        sink = self.sink
        if sink is None or self.close_reason is not None or not sink.writable():
            return
        if self._queue:
            items, self._queue = self._queue, []
            self._bytes = 0
            chunk = self.render(items)
            if chunk:
                sink.write(chunk)
        sink.drained()

    def close(self, reason: str) -> None:
        """End the stream after what is already written; drop everything still buffered."""
        if self.close_reason is None:
            self.close_reason = reason
            self._queue.clear()
            self._bytes = 0
            self._wake()
            if self.sink is not None:
                self.sink.closed()

    def abort(self, reason: str) -> None:
        """End the stream now, even in the middle of a write (a vanished client, a write stuck past
        the send timeout): close, then cancel the task writing to the client. Once only."""
        self.close(reason)
        if self.aborted:
            return
        task, sink = self.task, self.sink
        if task is not None:
            self.aborted = True
            task.cancel()
        elif sink is not None:
            self.aborted = True
            sink.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side (the client's own task) ----------------------------------------------

    @property
    def position(self) -> str:
        """The id that resumes this stream exactly where it stands now."""
        return self.id_for(self.channels[0])

    def id_for(self, channel: str) -> str:
        return format_vector(channel, self.ids) if self.multi else self.ids[channel]

    def cursor_key(self, channel: str) -> tuple[int, int]:
        return self._keys[channel]

    def catch_up(self, channel: str, stream_id: str, key: tuple[int, int]) -> None:
        """The hub wrote everything up to ``stream_id`` to this stream directly."""
        self.ids[channel] = stream_id
        self._keys[channel] = key

    def set_position(self, channel: str, stream_id: str) -> None:
        key = parse_stream_id(stream_id)
        if key is None:
            raise ValueError(f"not a stream id: {stream_id!r}")
        self.ids[channel] = stream_id
        self._keys[channel] = key

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield everything waiting as one chunk per wake-up, until the subscription closes."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self.close_reason is not None:
                    return
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            items, self._queue = self._queue, []
            self._bytes = 0
            chunk = self.render(items)
            if chunk:
                yield chunk

    def render(self, items: list[Item]) -> bytes:
        if len(items) == 1 and type(items[0]) is Event:  # the usual case below saturation
            return self._render_event(items[0]) or b""
        out: list[bytes] = []
        for item in items:
            if isinstance(item, Event):
                frame = self._render_event(item)
                if frame is not None:
                    out.append(frame)
            elif isinstance(item, Gap):
                out.append(self._render_gap(item))
            else:
                out.append(self.renderer.passthrough(item))
        return b"".join(out)

    def _render_event(self, event: Event) -> bytes | None:
        channel = event.channel
        if event.key is not None:
            if event.key <= self._keys[channel]:
                return None  # already delivered by a history replay
            self._keys[channel] = event.key
            self.ids[channel] = event.id
            return self.renderer.event(event, self.id_for(channel) if self.multi else None)
        if not self.multi and self.ids[channel] == event.id:
            return self.renderer.event(event, None)
        return self.renderer.event(event, self.id_for(channel))

    def _render_gap(self, gap: Gap) -> bytes:
        self.set_position(gap.channel, gap.reset_to)
        return self.renderer.gap(gap.channel, gap.reason, gap.reset_to, self.id_for(gap.channel))


def _size(item: Item) -> int:
    if isinstance(item, Event):
        return len(item.frame)
    return len(item) if isinstance(item, bytes) else 128
