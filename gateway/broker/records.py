"""Records with owners that must stay alive (Mercure's active subscriptions), on Redis.

A group is a sorted set of owners scored by the time each must renew by, and one hash of
records per owner. Every key of a group carries the group's hash tag, so a group lives in one
Redis Cluster slot and the transaction below is legal there too. Kept apart from
:mod:`gateway.broker.redis`, which owns the data path; these run through redis-py, as rare as
a subscription's heartbeat.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.broker.link import REDIS_ERRORS
from gateway.errors import BrokerUnavailable

__all__ = ["RedisRecords"]


class RedisRecords:
    """The Broker's record methods (gateway.broker.base), for a broker with a redis-py client."""

    _client: Any
    _key_prefix: str

    def _group_keys(self, group: str, owner: str = "") -> tuple[str, str]:
        return (
            f"{self._key_prefix}owners:{{{group}}}",
            f"{self._key_prefix}records:{{{group}}}:{owner}",
        )

    async def put_records(
        self,
        group: str,
        owner: str,
        put: dict[str, bytes],
        drop: list[str],
        ttl_ms: int,
        *,
        replace: bool = False,
    ) -> None:
        owners, records = self._group_keys(group, owner)
        now_ms = int(time.time() * 1000)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if replace:
                    pipe.delete(records)
                if put:
                    pipe.hset(records, mapping=put)
                if drop:
                    pipe.hdel(records, *drop)
                pipe.zadd(owners, {owner: now_ms + ttl_ms})
                # Twice the owner's own deadline: whoever claims a dead owner can still read it.
                pipe.pexpire(records, 2 * ttl_ms)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records write failed: {exc}") from exc

    async def live_records(self, group: str) -> list[bytes]:
        owners, _ = self._group_keys(group)
        found: list[bytes] = []
        try:
            alive = await self._client.zrangebyscore(owners, int(time.time() * 1000), "+inf")
            for owner in alive:
                records = self._group_keys(group, owner.decode())[1]
                found.extend((await self._client.hgetall(records)).values())
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records read failed: {exc}") from exc
        return found

    async def claim_dead(self, group: str) -> list[list[bytes]]:
        owners, _ = self._group_keys(group)
        claimed: list[list[bytes]] = []
        try:
            dead = await self._client.zrangebyscore(owners, "-inf", int(time.time() * 1000))
            for owner in dead:
                if await self._client.zrem(owners, owner) != 1:
                    continue  # another replica claimed it first
                records = self._group_keys(group, owner.decode())[1]
                claimed.append(list((await self._client.hgetall(records)).values()))
                await self._client.delete(records)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records claim failed: {exc}") from exc
        return claimed
