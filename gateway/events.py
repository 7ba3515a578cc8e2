"""Turning a message into SSE bytes, once per process (never once per subscriber).

An :class:`Event` carries its frame pre-encoded for the common case (a single-channel stream):
``id: <stream id>\\n[event: <name>\\n]data: <compact JSON>\\n\\n``. Multi-channel streams reuse the
same ``body`` (everything after the id line) and only prefix their own vector id.

Payloads can never inject SSE fields: ``data`` is compact JSON, which has no raw CR or LF (they are
escaped inside strings), and event names are checked against the naming rule.

Every SSE frame is encoded by sse-starlette's ``ServerSentEvent``: constant frames once per
process, and a message's frame from the frame sse-starlette made for its event name, with the
(one-line) data spliced in. The only other bytes put together here are the ``id:`` line that a
multi-channel stream puts in front of a shared body, in the same format.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import Protocol

import orjson
from sse_starlette.event import ServerSentEvent

from publisher.wire import is_valid_event_name

__all__ = [
    "GAP_EVENT",
    "KEEPALIVE",
    "REVOKED",
    "REVOKED_EVENT",
    "SSE",
    "Event",
    "SseFormat",
    "StreamFormat",
    "durable_event",
    "farewell_retry_ms",
    "format_frame",
    "raw_event",
    "revoked_retry_ms",
]

log = logging.getLogger("gateway.events")

GAP_EVENT = "gateway.gap"
REVOKED = "revoked"  # the close reason of a stream an operator revoked
REVOKED_EVENT = "gateway.revoked"
SEP = "\n"


def _sse(**fields: object) -> bytes:
    return ServerSentEvent(sep=SEP, **fields).encode()  # type: ignore[arg-type]


KEEPALIVE = _sse(comment="keepalive")  # the comment frame the hub's heartbeat shares


class Event:
    """One message on one channel, ready to write. ``key`` is None for raw (non-replayable) ones.

    ``name`` and ``data`` (compact JSON) are kept for other stream formats (NDJSON), which encode
    lazily, once per message, into the ``ndjson*`` slots; SSE bytes are built eagerly here.
    """

    __slots__ = ("body", "channel", "data", "frame", "id", "key", "name", "ndjson", "ndjson_tail")

    def __init__(
        self, channel: str, id: str, key: tuple[int, int] | None, name: str, data: bytes
    ) -> None:
        self.channel = channel
        self.id = id
        self.key = key
        self.name = name
        self.data = data
        self.body = _body(name, data)
        self.frame = b"id: " + id.encode() + b"\n" + self.body
        self.ndjson: bytes | None = None
        self.ndjson_tail: bytes | None = None


def format_frame(id_line: str, body: bytes) -> bytes:
    return b"id: " + id_line.encode() + b"\n" + body


def _body(event: str, data: bytes) -> bytes:
    head, tail = _frame_around_data(event)
    return head + data + tail


_DATA_MARK = "\x00data\x00"  # never in compact JSON: control characters are escaped there


@functools.lru_cache(maxsize=1024)  # bounded: event names come from producers
def _frame_around_data(event: str) -> tuple[bytes, bytes]:
    """sse-starlette's frame for this event name, split where the data goes.

    Callers guarantee the data is one line of compact JSON, which sse-starlette writes as one
    ``data:`` line unchanged; splicing it into the frame sse-starlette made gives the same bytes
    (tests/unit/test_events.py) for a fraction of encoding it each time (2.6 µs per message)."""
    head, mark, tail = _sse(data=_DATA_MARK, event=event or None).partition(_DATA_MARK.encode())
    assert mark, "sse-starlette changed how it writes data"
    return head, tail


def durable_event(
    channel: str, id: str, key: tuple[int, int], event: str, data: bytes
) -> Event | None:
    """An event from history or an announcement; ``None`` (logged) when it is not safe to send."""
    if event and not is_valid_event_name(event):
        log.warning("dropping message %s on %s: invalid event name", id, channel)
        return None
    if b"\n" in data or b"\r" in data:
        canonical = _canonical_json(data)
        if canonical is None:
            log.warning("dropping message %s on %s: data is not JSON", id, channel)
            return None
        data = canonical
    return Event(channel, id, key, event, data)


def raw_event(channel: str, anchor_id: str, payload: bytes) -> Event | None:
    """A plain ``PUBLISH``ed JSON message. It is not in history, so it reuses the anchor id."""
    data = _canonical_json(payload)
    if data is None:
        log.warning("dropping raw message on %s: not valid JSON (%d bytes)", channel, len(payload))
        return None
    return Event(channel, anchor_id, None, "", data)


def _canonical_json(payload: bytes) -> bytes | None:
    try:
        return orjson.dumps(orjson.loads(payload))
    except orjson.JSONDecodeError:
        return None


class StreamFormat(Protocol):
    """How one stream writes what its subscription delivers (SSE, NDJSON). The cursor logic that
    decides *what* is written lives in the subscription; a format only decides the bytes."""

    media_type: str

    def event(self, event: Event, id_line: str | None) -> bytes:
        """``id_line`` None means the event's own id (single-channel: the shared, cached bytes)."""
        ...

    def gap(self, channel: str, reason: str, resumed_at: str, id_line: str) -> bytes: ...

    def passthrough(self, item: bytes) -> bytes:
        """Bytes the hub pushes to every stream (today only the SSE keepalive comment)."""
        ...

    def preamble(self, retry_ms: int, position: str) -> bytes: ...

    def farewell(self, reason: str | None) -> bytes: ...

    def unavailable(self, retry_ms: int) -> bytes: ...


def farewell_retry_ms() -> int:
    # Short and jittered: reconnects to the other replicas spread out instead of stampeding.
    return random.randint(250, 2000)


def revoked_retry_ms() -> int:
    # At least a second, jittered over four: an operator who cut off a busy channel must not get
    # every client of every replica back in the same instant.
    return random.randint(1000, 5000)


class SseFormat:
    media_type = "text/event-stream"

    def event(self, event: Event, id_line: str | None) -> bytes:
        return event.frame if id_line is None else format_frame(id_line, event.body)

    def gap(self, channel: str, reason: str, resumed_at: str, id_line: str) -> bytes:
        data = orjson.dumps({"channel": channel, "reason": reason, "resumed_at": resumed_at})
        return _sse(id=id_line, event=GAP_EVENT, data=data.decode())

    def passthrough(self, item: bytes) -> bytes:
        return item

    def preamble(self, retry_ms: int, position: str) -> bytes:
        # An id-only frame: sets the browser's lastEventId without dispatching anything.
        return _sse(id=position, retry=retry_ms)

    def farewell(self, reason: str | None) -> bytes:
        if reason == "shutdown":
            return _sse(retry=farewell_retry_ms())
        if reason == REVOKED:  # an operator closed it (gateway.revocation); the client may return
            return _sse(event=REVOKED_EVENT, data='{"reason":"revoked"}', retry=revoked_retry_ms())
        if reason == "expired":  # the token's exp passed: come back soon, with a fresh token
            return _sse(comment="closed (expired)", retry=farewell_retry_ms())
        return _sse(comment=f"closed ({reason or 'closed'})")

    def unavailable(self, retry_ms: int) -> bytes:
        return _sse(retry=retry_ms)


SSE = SseFormat()
