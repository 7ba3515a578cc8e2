"""Idempotent publish: the same key on the same channel publishes once within a time window.

The key is stored next to the channel's history at ``<key_prefix>idem:{C}:<key>`` (the ``{C}``
hash tag puts it in the channel's Redis Cluster slot, so one script may touch both) and holds the
ids the first publish got. :data:`IDEMPOTENT_PUBLISH_SCRIPT` checks and sets it in the same
atomic script run as the publish itself, so two concurrent retries - on two gateway replicas, or
from two producers - still publish once, and every retry is answered with the first one's ids.

The script is :data:`publisher.wire.PUBLISH_SCRIPT` wrapped as a Lua function, not a copy: how a
message is stored and announced stays defined once. On a Redis Cluster it wraps
:data:`publisher.wire.SHARDED_PUBLISH_SCRIPT` the same way
(:data:`IDEMPOTENT_SHARDED_PUBLISH_SCRIPT`). The key identifies the publish; the body of a retry is
not compared with the first one (a retry is the same request by definition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from publisher.wire import DEFAULT_KEY_PREFIX, PUBLISH_SCRIPT, SHARDED_PUBLISH_SCRIPT

__all__ = [
    "DEFAULT_IDEMPOTENCY_TTL",
    "IDEMPOTENCY_KEY_PATTERN",
    "IDEMPOTENT_PUBLISH_SCRIPT",
    "IDEMPOTENT_SHARDED_PUBLISH_SCRIPT",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "Idempotency",
    "idempotency_key",
    "is_valid_idempotency_key",
]

DEFAULT_IDEMPOTENCY_TTL: Final = 300.0
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 128
# Printable, no spaces, commas or braces: a braced key could change the Redis Cluster slot.
IDEMPOTENCY_KEY_PATTERN: Final = rf"[A-Za-z0-9_.:\-]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}"
_KEY_RE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)


def is_valid_idempotency_key(key: str) -> bool:
    """1-128 letters, digits or ``_-.:`` (a UUID, a ULID, ``order-42:attempt`` all fit)."""
    return _KEY_RE.fullmatch(key) is not None


def idempotency_key(channel: str, key: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> str:
    return f"{key_prefix}idem:{{{channel}}}:{key}"


@dataclass(frozen=True, slots=True)
class Idempotency:
    """One publish's key and how long Redis remembers it."""

    key: str
    ttl_ms: int = int(DEFAULT_IDEMPOTENCY_TTL * 1000)

    def __post_init__(self) -> None:
        if not is_valid_idempotency_key(self.key):
            raise ValueError(
                f"invalid idempotency key {self.key[:200]!r}: "
                f"use 1-{MAX_IDEMPOTENCY_KEY_LENGTH} letters, digits or '_-.:'"
            )
        if self.ttl_ms < 1:
            raise ValueError("the idempotency window must be at least 1 ms")


# KEYS[1] = stream key, KEYS[2] = idempotency key. ARGV = the publish script's, then the window
# in ms last (taken off before the publish script reads ARGV). Returns the ids, first time or not.
_AROUND_PUBLISH: Final = """
end
local window = table.remove(ARGV)
local seen = redis.call('GET', KEYS[2])
if seen then
  local ids = {}
  for id in string.gmatch(seen, '[^,]+') do ids[#ids + 1] = id end
  return ids
end
local ids = publish()
redis.call('SET', KEYS[2], table.concat(ids, ','), 'PX', window)
return ids
"""


def _idempotent(publish_script: str) -> str:
    return "local function publish()\n" + publish_script + _AROUND_PUBLISH


IDEMPOTENT_PUBLISH_SCRIPT: Final = _idempotent(PUBLISH_SCRIPT)
IDEMPOTENT_SHARDED_PUBLISH_SCRIPT: Final = _idempotent(SHARDED_PUBLISH_SCRIPT)
