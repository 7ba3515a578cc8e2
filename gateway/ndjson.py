"""The same subscription as newline-delimited JSON (``Accept: application/x-ndjson``).

One JSON object per line, every line with a ``type`` so a line reader can tell kinds apart:

    {"type":"open","id":"<position>","retry":3000}            first line: where the stream starts
    {"type":"message","id":"<id>","channel":"orders","event":"message","data":{...}}
    {"type":"gap","id":"<id>","channel":"orders","reason":"truncated","resumed_at":"<id>"}
    {"type":"keepalive"}                                        when idle (never an empty line)
    {"type":"close","reason":"shutdown","retry":812}           last line when the gateway ends it
    {"type":"close","reason":"revoked","retry":2731}           ... when an operator revoked it

``id`` means exactly what the SSE ``id:`` field means (a stream id, or the multi-channel vector),
and is sent back as ``Last-Event-ID`` (or ``?lastEventId=``) to resume.

Divergences, on purpose:

* Keepalives are a JSON line, not an empty one: JSON Lines forbids blank lines and the most common
  consumer (``for line in r.iter_lines(): json.loads(line)``) would trip over one.
* The response object is the very one SSE streams use (``gateway/sse.py``), with another media
  type: it only writes ready-made bytes, so NDJSON streams get the same send timeout, disconnect
  detection, connection limits and shutdown handling as SSE ones, from the same code.
* Message lines are encoded lazily, once per message, and cached on the :class:`Event`; a
  multi-channel stream only prefixes its own vector id to the cached tail (as SSE does).
"""

from __future__ import annotations

import functools

import orjson

from gateway.events import REVOKED, Event, farewell_retry_ms, revoked_retry_ms

__all__ = ["MEDIA_TYPE", "NDJSON", "NdjsonFormat", "wants_ndjson"]

MEDIA_TYPE = "application/x-ndjson"
KEEPALIVE_LINE = b'{"type":"keepalive"}\n'
_HEAD = b'{"type":"message","id":'


class NdjsonFormat:
    media_type = MEDIA_TYPE

    def event(self, event: Event, id_line: str | None) -> bytes:
        tail = event.ndjson_tail
        if tail is None:
            tail = event.ndjson_tail = _tail(event)
        if id_line is not None:
            return _HEAD + orjson.dumps(id_line) + tail
        line = event.ndjson
        if line is None:
            line = event.ndjson = _HEAD + orjson.dumps(event.id) + tail
        return line

    def gap(self, channel: str, reason: str, resumed_at: str, id_line: str) -> bytes:
        fields = {"channel": channel, "reason": reason, "resumed_at": resumed_at}
        return _line({"type": "gap", "id": id_line, **fields})

    def passthrough(self, item: bytes) -> bytes:
        # The hub pushes SSE comment bytes (keepalives); a line reader gets a JSON line instead.
        return KEEPALIVE_LINE

    def preamble(self, retry_ms: int, position: str) -> bytes:
        return _line({"type": "open", "id": position, "retry": retry_ms})

    def farewell(self, reason: str | None) -> bytes:
        if reason == REVOKED:
            return _line({"type": "close", "reason": reason, "retry": revoked_retry_ms()})
        if reason in ("shutdown", "expired"):
            return _line({"type": "close", "reason": reason, "retry": farewell_retry_ms()})
        return _line({"type": "close", "reason": reason or "closed"})

    def unavailable(self, retry_ms: int) -> bytes:
        return _line({"type": "close", "reason": "unavailable", "retry": retry_ms})


NDJSON = NdjsonFormat()


def _tail(event: Event) -> bytes:
    """Everything after the id: built once per message. ``data`` is compact JSON (no newline)."""
    names = orjson.dumps({"channel": event.channel, "event": event.name or "message"})
    return b"," + names[1:-1] + b',"data":' + event.data + b"}\n"


def _line(value: dict[str, object]) -> bytes:
    return orjson.dumps(value) + b"\n"


def wants_ndjson(accept: str | None) -> bool:
    """True when ``Accept`` asks for NDJSON and does not rank ``text/event-stream`` higher.

    SSE stays the default: wildcards (``*/*``) and a missing header mean SSE.
    """
    if not accept:
        return False
    return _wants_ndjson(accept[:1024])


@functools.lru_cache(maxsize=256)  # a few distinct headers (one per client library) arrive again
def _wants_ndjson(accept: str) -> bool:
    ranks = _qualities(accept)
    ndjson = ranks.get(MEDIA_TYPE, 0.0)
    return ndjson > 0 and ndjson >= ranks.get("text/event-stream", 0.0)


def _qualities(accept: str) -> dict[str, float]:
    ranks: dict[str, float] = {}
    for part in accept.split(",")[:32]:  # bounded: a hostile header cannot make us loop long
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                quality = _float(value)
        ranks[media.lower()] = max(quality, ranks.get(media.lower(), 0.0))
    return ranks


def _float(value: str) -> float:
    try:
        return min(max(float(value), 0.0), 1.0)
    except ValueError:
        return 0.0
