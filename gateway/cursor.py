"""Event ids as positions: what ``Last-Event-ID`` means and how we write it.

* A single-channel stream uses the channel's stream id as is: ``1732190000000-0`` (the same id the
  publish call returned).
* A multi-channel stream uses a vector of every channel's position, the channel the event came
  from first: ``orders=1732190000000-0,alerts=1732190000123-3``. A browser resends it on
  reconnect, so the gateway knows where the client stood on *every* channel; and
  ``lastEventId.split("=")[0]`` tells which channel an event belongs to without parsing its data.

Positions are Redis stream ids, assigned by Redis alone: no clock of any gateway is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

from publisher.wire import is_valid_channel, parse_stream_id

__all__ = ["MAX_ID_LENGTH", "ParsedId", "format_vector", "parse_last_event_id"]

MAX_ID_LENGTH = 16_384


@dataclass(frozen=True, slots=True)
class ParsedId:
    positions: dict[str, str]
    malformed: bool = False


def parse_last_event_id(raw: str | None, channels: tuple[str, ...]) -> ParsedId:
    """Positions for the subscribed channels the id names; ``malformed`` when it cannot be read.

    Channels the id does not name start at the live position (the client never followed them).
    """
    if not raw:
        return ParsedId({})
    if len(raw) > MAX_ID_LENGTH:
        return ParsedId({}, malformed=True)
    if "=" not in raw:
        if len(channels) == 1 and parse_stream_id(raw) is not None:
            return ParsedId({channels[0]: raw})
        return ParsedId({}, malformed=True)
    positions: dict[str, str] = {}
    for item in raw.split(","):
        name, _, position = item.partition("=")
        if not is_valid_channel(name) or parse_stream_id(position) is None:
            return ParsedId({}, malformed=True)
        if name in channels:
            positions[name] = position
    return ParsedId(positions)


def format_vector(first: str, ids: dict[str, str]) -> str:
    rest = ",".join(f"{name}={position}" for name, position in ids.items() if name != first)
    head = f"{first}={ids[first]}"
    return f"{head},{rest}" if rest else head
