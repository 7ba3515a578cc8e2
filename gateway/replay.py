"""Reading what a resuming client missed on one channel, and proving nothing else is missing.

The first entry after the client's position ``L`` must name ``L`` as its predecessor; otherwise
history no longer covers the gap (trimmed, expired, or lost with Redis) and the client is told so.
Reads are paged and capped, so a crafted id can never make the gateway scan unbounded history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.broker.base import Broker, HistoryEntry
from publisher.wire import parse_stream_id

__all__ = ["PAGE_SIZE", "Replay", "reaches", "read_missed"]

PAGE_SIZE = 500


def reaches(position: str, first: HistoryEntry) -> bool:
    """The one gap rule: history still reaches ``position`` when the first entry it holds after
    ``position`` names it as predecessor (``0-0``: the very beginning of the channel)."""
    return first.prev == position


@dataclass(slots=True)
class Replay:
    entries: list[HistoryEntry] = field(default_factory=list)
    gap: str | None = None  # "truncated" or "unknown"
    reset_to: str | None = None  # where the client's position restarts when there is a gap


async def read_missed(broker: Broker, channel: str, after: str, head: str, limit: int) -> Replay:
    """Entries after ``after`` up to at least ``head``, the live position when the client joined."""
    after_key, head_key = parse_stream_id(after), parse_stream_id(head)
    if after_key is None or head_key is None:
        return Replay(gap="unknown", reset_to=head)
    if after_key == head_key:
        return Replay()
    if after_key > head_key:
        return Replay(gap="unknown", reset_to=head)  # a position history never had
    replay = Replay()
    cursor = after
    while True:
        page = await broker.history(
            channel, cursor, min(PAGE_SIZE, limit + 1 - len(replay.entries))
        )
        if cursor == after and page and not reaches(after, page[0]):
            replay.gap, replay.reset_to = "truncated", page[0].prev
        replay.entries.extend(page)
        if len(replay.entries) > limit:
            return Replay(gap="truncated", reset_to=head)  # too far behind to replay in full
        last_key = parse_stream_id(page[-1].id) if page else None
        if not page or last_key is None or last_key >= head_key:
            break
        cursor = page[-1].id
    if not replay.entries:
        return Replay(gap="truncated", reset_to=head)  # history after `after` vanished
    return replay
