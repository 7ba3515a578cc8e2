"""The Redis side of presence: every replica's stream counts per channel, with expiry.

Two hashes per channel, under the channel's hash tag so one script touches both (Redis Cluster):

* ``<key_prefix>presence:{C}``: field ``<replica>`` = ``"<deadline_ms> <streams>"``
* ``<key_prefix>subjects:{C}``: field ``<replica>/<subject>`` = ``<streams>``

A replica writes its count and the subjects that changed when streams come or go, and refreshes
its count field every third of the TTL (a subject field lives as long as its replica's count field);
the deadline is taken from Redis' own clock (``TIME`` inside the script), so replicas need no
synchronised clocks. Readers count only replicas whose deadline is in the future, so a replica
that died without a word (SIGKILL, a lost node) drops out of every count within the TTL; the next
write on the channel by anyone deletes its fields, and keys nobody refreshes expire whole.

Redis 7.4's per-field expiry (HEXPIRE) would do the same with less Lua; this runs on Redis 6 and
7.0 and on fakeredis, which the embedded mode uses.
"""

from __future__ import annotations

from typing import Any

from gateway.broker.link import REDIS_ERRORS
from gateway.errors import BrokerUnavailable

__all__ = ["PresenceStore"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: counts, subjects. ARGV: replica, ttl_ms, streams, n, n x (subject, streams), gone subjects.
WRITE_SCRIPT = (
    _NOW
    + """
local replica, ttl, streams, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if streams > 0 then
  redis.call('HSET', KEYS[1], replica, string.format('%d %d', now + ttl, streams))
else
  redis.call('HDEL', KEYS[1], replica)
end
for i = 5, 4 + 2 * n, 2 do
  redis.call('HSET', KEYS[2], replica .. '/' .. ARGV[i], ARGV[i + 1])
end
for i = 5 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[2], replica .. '/' .. ARGV[i])
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if tonumber(string.match(fields[i + 1], '^(%d+)')) <= now then
    redis.call('HDEL', KEYS[1], fields[i])
    local prefix = fields[i] .. '/'
    for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
      if string.sub(name, 1, #prefix) == prefix then redis.call('HDEL', KEYS[2], name) end
    end
  end
end
-- Never shortens: a replica with a shorter TTL (a rolling config change) must not cut others'.
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left ~= -2 and left < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
"""
)

# KEYS: counts, subjects. Returns the live stream count, then (subject, streams) pairs.
READ_SCRIPT = (
    _NOW
    + """
local live, total = {}, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local deadline, streams = string.match(fields[i + 1], '^(%d+) (%d+)$')
  if deadline and tonumber(deadline) > now then
    live[fields[i]] = true
    total = total + tonumber(streams)
  end
end
local out = {total}
if ARGV[1] == '1' then
  local subjects = redis.call('HGETALL', KEYS[2])
  for i = 1, #subjects, 2 do
    local replica, subject = string.match(subjects[i], '^([^/]*)/(.*)$')
    if replica and live[replica] then
      out[#out + 1] = subject
      out[#out + 1] = subjects[i + 1]
    end
  end
end
return out
"""
)


class PresenceStore:
    def __init__(self, client: Any, key_prefix: str, replica: str, ttl: float) -> None:
        self._prefix = key_prefix
        self.replica = replica
        self._ttl_ms = int(ttl * 1000)
        self._write = client.register_script(WRITE_SCRIPT)
        self._read = client.register_script(READ_SCRIPT)

    def _keys(self, channel: str) -> list[str]:
        return [f"{self._prefix}presence:{{{channel}}}", f"{self._prefix}subjects:{{{channel}}}"]

    async def write(
        self, channel: str, streams: int, subjects: dict[str, int], gone: list[str]
    ) -> None:
        """This replica's counts on ``channel``. Raises BrokerUnavailable."""
        args: list[Any] = [self.replica, self._ttl_ms, streams, len(subjects)]
        for subject, count in subjects.items():
            args += (subject, count)
        args += gone
        await self._call(self._write, channel, args)

    async def count(self, channel: str) -> int:
        """Streams on ``channel`` over every live replica. Raises BrokerUnavailable."""
        reply = await self._call(self._read, channel, ["0"])
        return int(reply[0])

    async def subjects(self, channel: str) -> tuple[int, dict[str, int]]:
        """(streams, {subject: streams}) over every live replica. Raises BrokerUnavailable."""
        reply = await self._call(self._read, channel, ["1"])
        clients: dict[str, int] = {}
        for index in range(1, len(reply) - 1, 2):
            subject = reply[index].decode("utf-8", "replace")
            clients[subject] = clients.get(subject, 0) + int(reply[index + 1])
        return int(reply[0]), clients

    async def _call(self, script: Any, channel: str, args: list[Any]) -> Any:
        try:
            return await script(keys=self._keys(channel), args=args)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"presence: redis failed: {exc}") from exc
