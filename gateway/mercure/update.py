"""A Mercure update: how it is stored in the Mercure log, and its SSE frame.

Stored as one compact JSON object in the ``d`` field of a log entry (publisher.wire), so it goes
through the same publish script, history and hub as our own messages::

    {"i": id, "t": [canonical, alternates...], "d": data, "p": 1, "y": type, "r": retry}

(``p`` only when private, ``y`` and ``r`` only when given.)

``i`` first and always present: the publish script indexes it (INDEXED_PUBLISH_SCRIPT). The SSE
frame is built once per process per update (an LRU keyed by the stored bytes, which every
subscriber shares), never once per subscriber: ``id:`` the publisher's id, ``event:`` the type,
``retry:``, and the data as one ``data:`` line per line (sse-starlette splits on CR, LF and CRLF).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import orjson
from sse_starlette.event import ServerSentEvent

__all__ = ["Update", "decode_update", "encode_update"]


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    topics: tuple[str, ...]
    data: str
    private: bool = False
    type: str | None = None
    retry: int | None = None


def encode_update(update: Update) -> bytes:
    stored: dict[str, object] = {"i": update.id, "t": list(update.topics), "d": update.data}
    if update.private:
        stored["p"] = 1
    if update.type is not None:
        stored["y"] = update.type
    if update.retry is not None:
        stored["r"] = update.retry
    return orjson.dumps(stored)


@dataclass(frozen=True, slots=True)
class Decoded:
    """An update as subscribers need it: what to match on, and its bytes."""

    update: Update
    frame: bytes


@functools.lru_cache(maxsize=4096)
def decode_update(stored: bytes) -> Decoded | None:
    """``None`` for an entry that is not a Mercure update (never written by this hub)."""
    try:
        raw = orjson.loads(stored)
        update = Update(
            id=str(raw["i"]),
            topics=tuple(str(topic) for topic in raw["t"]),
            data=str(raw.get("d", "")),
            private=bool(raw.get("p")),
            type=raw.get("y"),
            retry=raw.get("r"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return Decoded(update, _frame(update))


def _frame(update: Update) -> bytes:
    event = ServerSentEvent(
        data=update.data, id=update.id, event=update.type, retry=update.retry, sep="\n"
    )
    return event.encode()
