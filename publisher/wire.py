"""The wire format shared by producers and the gateway: defined here once, imported everywhere.

Storage and announcement of one message on channel ``C``:

* **History**: a Redis Stream at ``<key_prefix>stream:{C}`` (the braces are a Redis Cluster hash
  tag). Each entry has the fields ``p`` (the id of the previous entry, ``0-0`` for the first),
  ``e`` (the SSE event name, ``""`` when none) and ``d`` (the message as compact JSON). The stream
  is trimmed on every publish by length and age and expires after ``ttl`` of silence.
* **Announcement**: ``PUBLISH <pubsub_prefix>C`` of the envelope
  ``#sse1\\n<id>\\n<prev>\\n<event>\\n<data>``. ``#`` can never start a JSON text, so a raw producer
  that ``PUBLISH``es plain JSON on the same pub/sub channel is told apart without ambiguity.
* **On Redis Cluster** the announcement is ``SPUBLISH <pubsub_prefix>{C}`` instead
  (:data:`SHARDED_PUBLISH_SCRIPT`): a shard channel stays on the shard that owns its slot, where a
  classic ``PUBLISH`` is broadcast to every node over the cluster bus. The braces make the shard
  channel hash to the stream key's slot, so the script announces on the node that runs it.

Both happen in one atomic script (:data:`PUBLISH_SCRIPT`) which also lets Redis assign the id.
Ids are Redis stream ids (``<ms>-<seq>``): Redis alone assigns them, monotonic per stream even if
its clock steps back, so no two machines ever need synchronised clocks.

Why ``prev``: every entry names its predecessor, so whoever holds id ``L`` can tell with one read
whether the next entry it sees follows ``L`` directly (nothing missed) or not (history was trimmed,
expired or lost with a Redis restart). That turns "did I miss anything?" into an exact check
instead of a guess from timestamps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CHANNEL_PATTERN",
    "DEFAULT_HISTORY",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_PUBSUB_PREFIX",
    "ENVELOPE_MAGIC",
    "EVENT_NAME_PATTERN",
    "INDEXED_PUBLISH_SCRIPT",
    "MAX_CHANNEL_LENGTH",
    "PUBLISH_SCRIPT",
    "RESERVED_CHANNEL_PREFIX",
    "RESERVED_EVENT_PREFIX",
    "SHARDED_INDEXED_PUBLISH_SCRIPT",
    "SHARDED_PUBLISH_SCRIPT",
    "ZERO_ID",
    "Envelope",
    "HistoryLimits",
    "announce_channel",
    "decode_envelope",
    "encode_envelope",
    "encode_json",
    "index_keys",
    "is_valid_channel",
    "is_valid_event_name",
    "parse_stream_id",
    "publish_args",
    "pubsub_channel",
    "shard_channel",
    "stream_key",
]

DEFAULT_KEY_PREFIX: Final = "sse:"
DEFAULT_PUBSUB_PREFIX: Final = ""
ZERO_ID: Final = "0-0"
ENVELOPE_MAGIC: Final = b"#sse1\n"
MAX_CHANNEL_LENGTH: Final = 128
MAX_EVENT_NAME_LENGTH: Final = 64

# Letters, digits and "_ - . :", starting with a letter, digit or "_". The rule keeps every
# channel a valid Redis key fragment and pub/sub name, and keeps Redis' own channels
# (``__keyspace@0__:...``) and the gateway's internal ones (they contain "@") out of reach.
_NAME_PATTERN: Final = r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,%d}"
CHANNEL_PATTERN: Final = _NAME_PATTERN % (MAX_CHANNEL_LENGTH - 1)  # plus the "__" rule below
EVENT_NAME_PATTERN: Final = _NAME_PATTERN % (MAX_EVENT_NAME_LENGTH - 1)  # and "gateway."
_CHANNEL_RE: Final = re.compile(CHANNEL_PATTERN)
_EVENT_RE: Final = re.compile(EVENT_NAME_PATTERN)
_STREAM_ID_RE: Final = re.compile(r"(\d{1,20})-(\d{1,20})")


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """How much history each channel keeps. Producers and gateways must agree on these."""

    max_len: int = 1000
    max_age_ms: int = 3_600_000
    ttl_ms: int = 86_400_000

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise ValueError("history max_len must be at least 1")
        if self.max_age_ms < 0 or self.ttl_ms < 0:
            raise ValueError("history ages must not be negative")


DEFAULT_HISTORY: Final = HistoryLimits()


@dataclass(frozen=True, slots=True)
class Envelope:
    """One announced message as the gateway receives it from pub/sub."""

    id: str
    prev: str
    event: str
    data: bytes


# Redis names its own pub/sub channels "__...": __keyspace@0__:*, __redis__:invalidate,
# __sentinel__:hello (Sentinel's gossip: addresses and run ids). The pattern already keeps out
# the ones with "@"; the prefix rule keeps out the rest, whatever Redis adds later.
RESERVED_CHANNEL_PREFIX: Final = "__"


def is_valid_channel(name: str) -> bool:
    """The one channel naming rule, shared by producers and the gateway."""
    return _CHANNEL_RE.fullmatch(name) is not None and not name.startswith(RESERVED_CHANNEL_PREFIX)


RESERVED_EVENT_PREFIX: Final = "gateway."


def is_valid_event_name(name: str) -> bool:
    """Same rule as channels; names starting with ``gateway.`` are the gateway's own signals."""
    return _EVENT_RE.fullmatch(name) is not None and not name.startswith(RESERVED_EVENT_PREFIX)


def parse_stream_id(value: str) -> tuple[int, int] | None:
    """``"1732190000000-3"`` -> ``(1732190000000, 3)``; ``None`` when it is not a stream id."""
    match = _STREAM_ID_RE.fullmatch(value)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms >= 1 << 64 or seq >= 1 << 64:
        return None
    return ms, seq


def stream_key(channel: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> str:
    return f"{key_prefix}stream:{{{channel}}}"


def pubsub_channel(channel: str, pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX) -> str:
    return pubsub_prefix + channel


def shard_channel(channel: str, pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX) -> str:
    """The cluster's shard channel: hash-tagged like :func:`stream_key`, so both share a slot."""
    return f"{pubsub_prefix}{{{channel}}}"


def announce_channel(
    channel: str, pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX, *, sharded: bool = False
) -> str:
    """Where a channel is announced: its shard channel on a cluster (SPUBLISH), else PUBLISH's."""
    return (shard_channel if sharded else pubsub_channel)(channel, pubsub_prefix)


def encode_json(message: Any) -> bytes:
    """Compact JSON, the one form stored and sent. Raises ``ValueError``/``TypeError``."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def encode_envelope(envelope: Envelope) -> bytes:
    head = f"{envelope.id}\n{envelope.prev}\n{envelope.event}\n".encode("ascii")
    return ENVELOPE_MAGIC + head + envelope.data


def decode_envelope(payload: bytes) -> Envelope | None:
    """Parse an announcement; ``None`` for anything else (raw JSON from a plain PUBLISH)."""
    if not payload.startswith(ENVELOPE_MAGIC):
        return None
    parts = payload[len(ENVELOPE_MAGIC) :].split(b"\n", 3)
    if len(parts) != 4:
        return None
    try:
        id_, prev, event = (part.decode("ascii") for part in parts[:3])
    except UnicodeDecodeError:
        return None
    return Envelope(id=id_, prev=prev, event=event, data=parts[3])


def publish_args(
    channel: str,
    messages: list[tuple[str, bytes]],
    limits: HistoryLimits = DEFAULT_HISTORY,
    pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX,
    *,
    sharded: bool = False,
) -> list[str | bytes | int]:
    """ARGV for :data:`PUBLISH_SCRIPT` (``sharded``: :data:`SHARDED_PUBLISH_SCRIPT`): settings,
    then ``(event, data)`` pairs."""
    args: list[str | bytes | int] = [
        announce_channel(channel, pubsub_prefix, sharded=sharded),
        limits.max_len,
        limits.max_age_ms,
        limits.ttl_ms,
    ]
    for event, data in messages:
        args.append(event)
        args.append(data)
    return args


# KEYS[1] = stream key.  ARGV = pubsub channel, max_len, max_age_ms, ttl_ms, (event, data)...
# Returns the new ids in order. One call publishes a whole batch atomically, in one round trip.
# Length trimming is approximate (~: Redis drops whole nodes, so up to ~100 extra entries stay,
# which only ever widens what a resume can recover); age trimming is exact as of each publish.
# The newest entry always survives, so the stream never loses the id the next entry names.
PUBLISH_SCRIPT: Final = """
local key = KEYS[1]
local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
local ids = {}
for i = 5, #ARGV, 2 do
  local event, data = ARGV[i], ARGV[i + 1]
  local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[2], '*', 'p', prev, 'e', event, 'd', data)
  local head = '#sse1\\n' .. id .. '\\n' .. prev .. '\\n' .. event .. '\\n'
  redis.call('PUBLISH', ARGV[1], head .. data)
  ids[#ids + 1] = id
  prev = id
end
local max_age = tonumber(ARGV[3])
if max_age > 0 and #ids > 0 then
  local newest_ms = tonumber(string.match(prev, '^(%d+)'))
  redis.call('XTRIM', key, 'MINID', string.format('%d', newest_ms - max_age))
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return ids
"""


def _sharded(script: str) -> str:
    """The same script announcing with SPUBLISH (Redis >= 7.0), for Redis Cluster; ARGV[1] is then
    the shard channel (publish_args(..., sharded=True)). Derived, so the twins can never drift."""
    assert script.count("redis.call('PUBLISH',") == 1
    return script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")


SHARDED_PUBLISH_SCRIPT: Final = _sharded(PUBLISH_SCRIPT)


def index_keys(channel: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> tuple[str, str]:
    """The id index of a channel whose messages carry their own ids (INDEXED_PUBLISH_SCRIPT): a
    hash (own id -> stream id) and the list of own ids in publish order that bounds it. Same
    hash tag as the stream, so all three live in one Redis Cluster slot."""
    return f"{key_prefix}index:{{{channel}}}", f"{key_prefix}order:{{{channel}}}"


# KEYS[1] = stream key, KEYS[2], KEYS[3] = index_keys(channel). ARGV as for PUBLISH_SCRIPT, and
# every message's data is a JSON object whose "i" member is the id its producer chose (Mercure's
# update ids). The publish itself is PUBLISH_SCRIPT, word for word; then, in the same atomic step,
# each own id is indexed to its stream id, so a client resuming from an own id is served from the
# index on any gateway the moment it could have seen the message - never a scan of history. The
# first message wins a reused id (the Mercure spec resolves a reused id to the earliest). The index
# keeps the newest 2 * max_len + 100 ids, more than the stream keeps, so it never forgets an id
# history still holds; an index hit whose entry history already trimmed is reported by the replay's
# continuity check, as for any other position.
_INDEX_TAIL: Final = """
local cap = tonumber(ARGV[2]) * 2 + 100
for n, id in ipairs(ids) do
  local own = cjson.decode(ARGV[4 + 2 * n])['i']
  if redis.call('HSETNX', KEYS[2], own, id) == 1 then redis.call('RPUSH', KEYS[3], own) end
end
while redis.call('LLEN', KEYS[3]) > cap do
  redis.call('HDEL', KEYS[2], redis.call('LPOP', KEYS[3]))
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return ids
"""
assert PUBLISH_SCRIPT.endswith("\nreturn ids\n")
INDEXED_PUBLISH_SCRIPT: Final = PUBLISH_SCRIPT[: -len("return ids\n")] + _INDEX_TAIL.lstrip("\n")
SHARDED_INDEXED_PUBLISH_SCRIPT: Final = _sharded(INDEXED_PUBLISH_SCRIPT)
