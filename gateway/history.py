"""Pages of a channel's history for ``GET /history/{channel}``, with the resume's gap rule.

A page is read forwards (``after=``: entries after that id, up to ``before=`` when both are
given) or backwards (``before=`` alone, or neither: the newest entries), and is always listed
oldest first. Each read asks for one entry more than the page holds, so whether another page
follows is known, not guessed.

``truncated`` is :func:`gateway.replay.reaches` answered for the page, the same rule a resume
applies: forwards, history no longer reaches ``after`` (trimmed, expired, lost with Redis); the
page then starts with what history still holds. Backwards, history no longer reaches the start of
the channel, and this page holds its oldest entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.broker.base import Broker, HistoryEntry
from gateway.replay import reaches
from publisher.wire import ZERO_ID, parse_stream_id

__all__ = ["HistoryPage", "page_after", "page_before"]

LAST_POSSIBLE = ((1 << 64) - 1, (1 << 64) - 1)  # the greatest stream id


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next: str | None  # the after= of the following (newer) page; None: nothing newer yet
    prev: str | None  # the before= of the preceding (older) page; None: nothing older is held
    truncated: bool


async def page_after(
    broker: Broker, channel: str, after: str, limit: int, before: str | None = None
) -> HistoryPage:
    """Entries after ``after`` (and before ``before``, when given: a range)."""
    if _key(after) == LAST_POSSIBLE:  # Redis refuses an interval starting past it
        return HistoryPage([], None, None, await broker.last_id(channel) != after)
    entries = await broker.history(channel, after, limit + 1)
    if before is not None:
        entries = [entry for entry in entries if _key(entry.id) < _key(before)]
    more = len(entries) > limit
    entries = entries[:limit]
    if not entries:
        # Nothing after it: fine when `after` is the newest id; a position past the newest is
        # one history never had (lost with Redis, or expired), so nothing can be proven.
        newest = await broker.last_id(channel)
        return HistoryPage([], None, None, _key(after) > _key(newest))
    first = entries[0]
    return HistoryPage(
        entries,
        next=entries[-1].id if more else None,
        prev=first.id if first.prev != ZERO_ID else None,
        truncated=not reaches(after, first),
    )


async def page_before(broker: Broker, channel: str, before: str | None, limit: int) -> HistoryPage:
    if before is not None and _key(before) == (0, 0):  # Redis refuses an interval ending there
        return HistoryPage([], None, None, False)
    entries = await broker.history_before(channel, before, limit + 1)
    more = len(entries) > limit
    entries = entries[len(entries) - limit :] if more else entries
    oldest = entries[0] if entries else await _oldest(broker, channel)
    truncated = not more and oldest is not None and not reaches(ZERO_ID, oldest)
    following = None
    if entries and before is not None and entries[-1].id != await broker.last_id(channel):
        following = entries[-1].id
    return HistoryPage(entries, following, entries[0].id if more else None, truncated)


async def _oldest(broker: Broker, channel: str) -> HistoryEntry | None:
    page = await broker.history(channel, ZERO_ID, 1)
    return page[0] if page else None


def _key(stream_id: str) -> tuple[int, int]:
    return parse_stream_id(stream_id) or (0, 0)
