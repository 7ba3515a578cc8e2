"""From a Mercure ``Last-Event-ID`` (a publisher's id) to a position in the Mercure log.

Publisher ids are looked up in the index the publish script keeps beside the log
(publisher.wire.INDEXED_PUBLISH_SCRIPT): one HGET, on any replica, whatever the history length.
From the position on, replay and live delivery are the hub's, with its exactness.

* ``earliest``: from the start of the log (everything history holds; replay_max at most).
* a known id: right after that update. The response's ``Last-Event-ID`` is that id.
* an unknown id (never published, or older than history): live from now, and the response's
  ``Last-Event-ID`` is ``earliest``, as the spec says for an id that does not exist.
"""

from __future__ import annotations

from gateway.broker.base import Broker
from gateway.mercure.update import decode_update
from publisher.wire import ZERO_ID, parse_stream_id

__all__ = ["last_update_id", "resolve_last_event_id"]

EARLIEST = "earliest"
MAX_ID_LENGTH = 1024


async def resolve_last_event_id(
    broker: Broker, log: str, requested: str | None
) -> tuple[str | None, str]:
    """``(log position to resume after or None for live, anchor for the response header)``."""
    if not requested:
        return None, EARLIEST
    if requested == EARLIEST:
        return ZERO_ID, EARLIEST
    if len(requested) > MAX_ID_LENGTH:
        return None, EARLIEST
    position = await broker.find_indexed(log, requested)
    if position is None:
        return None, EARLIEST
    return position, requested


async def last_update_id(broker: Broker, log: str) -> str:
    """The id of the newest update in the log (the subscriptions API's ``lastEventID``)."""
    head = parse_stream_id(await broker.last_id(log))
    if head is None or head == (0, 0):
        return EARLIEST
    ms, seq = head
    before = f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{(1 << 64) - 1}"
    entries = await broker.history(log, before, 1)
    decoded = decode_update(entries[0].data) if entries else None
    return decoded.update.id if decoded is not None else EARLIEST
