"""Turning a message into SSE bytes, once per process (never once per subscriber).

An :class:`Event` carries its frame pre-encoded for the common case (a single-channel stream):
``id: <stream id>\\n[event: <name>\\n]data: <compact JSON>\\n\\n``. Multi-channel streams reuse the
same ``body`` (everything after the id line) and only prefix their own vector id.

Payloads can never inject SSE fields: ``data`` is compact JSON, which has no raw CR or LF (they are
escaped inside strings), and event names are checked against the naming rule.
"""

from __future__ import annotations

import logging

import orjson

from publisher.wire import is_valid_event_name

__all__ = ["GAP_EVENT", "Event", "durable_event", "format_frame", "raw_event"]

log = logging.getLogger("gateway.events")

GAP_EVENT = "gateway.gap"


class Event:
    """One message on one channel, ready to write. ``key`` is None for raw (non-replayable) ones."""

    __slots__ = ("body", "channel", "frame", "id", "key")

    def __init__(self, channel: str, id: str, key: tuple[int, int] | None, body: bytes) -> None:
        self.channel = channel
        self.id = id
        self.key = key
        self.body = body
        self.frame = b"id: " + id.encode() + b"\n" + body


def format_frame(id_line: str, body: bytes) -> bytes:
    return b"id: " + id_line.encode() + b"\n" + body


def _body(event: str, data: bytes) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


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
    return Event(channel, id, key, _body(event, data))


def raw_event(channel: str, anchor_id: str, payload: bytes) -> Event | None:
    """A plain ``PUBLISH``ed JSON message. It is not in history, so it reuses the anchor id."""
    data = _canonical_json(payload)
    if data is None:
        log.warning("dropping raw message on %s: not valid JSON (%d bytes)", channel, len(payload))
        return None
    return Event(channel, anchor_id, None, _body("", data))


def _canonical_json(payload: bytes) -> bytes | None:
    try:
        return orjson.dumps(orjson.loads(payload))
    except orjson.JSONDecodeError:
        return None
