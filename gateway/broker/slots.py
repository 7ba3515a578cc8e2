"""Which Redis Cluster node serves which slot, learned from the cluster itself.

The map comes from ``CLUSTER SLOTS`` asked of any node we know: the URL's nodes first, then every
node an earlier map named. So a cluster is followed past the death of every node the URL lists,
as long as one node we have heard of answers. A refresh is asked for by whoever saw the map go
stale (a lost connection, a ``MOVED``, a ``sunsubscribe``); requests made while one runs share it.

Why not redis-py's ``RedisCluster`` slot cache: it is not a public API, and the broker must
learn *that* ownership changed (to recover from history), not only route the next command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.crc import key_slot

from gateway.broker.connection import Endpoint, RedisConnection
from gateway.broker.link import REDIS_ERRORS

__all__ = ["Address", "SlotMap", "channel_slot"]

log = logging.getLogger("gateway.broker")

Address = tuple[str, int]
SLOTS = 16384


def channel_slot(channel: str) -> int:
    """The slot of a channel's stream key and shard channel (both hash-tagged ``{C}``)."""
    return key_slot(b"{" + channel.encode() + b"}")


class SlotMap:
    def __init__(self, seeds: list[Address], endpoint: Endpoint) -> None:
        self._known: list[Address] = list(seeds)
        self._endpoint = endpoint  # auth and TLS, for any node
        self._owners: list[Address | None] = [None] * SLOTS
        self._refreshing: asyncio.Task[bool] | None = None
        self.listeners: list[Callable[[], None]] = []
        self.ok = False

    def owner(self, channel: str) -> Address | None:
        return self._owners[channel_slot(channel)]

    def masters(self) -> set[Address]:
        return {owner for owner in self._owners if owner is not None}

    async def refresh(self) -> bool:
        """Re-read the map (joining a refresh under way); True when some node answered."""
        return await asyncio.shield(self._refresh_task())

    def request_refresh(self) -> None:
        """Refresh in the background (listeners hear about the new map)."""
        self._refresh_task()

    def _refresh_task(self) -> asyncio.Task[bool]:
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh(), name="cluster-slots")
            self._refreshing.add_done_callback(self._forget_refresh)
        return self._refreshing

    def _forget_refresh(self, task: asyncio.Task[bool]) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            log.error("reading the cluster slot map failed", exc_info=task.exception())

    async def _refresh(self) -> bool:
        for address in list(self._known):
            try:
                reply = await self._ask(address)
            except REDIS_ERRORS as exc:
                log.debug("CLUSTER SLOTS from %s:%d failed: %s", *address, exc)
                continue
            if self._load(reply):
                self._known.remove(address)
                self._known.insert(0, address)  # it answered: ask it first next time
                self.ok = True
                for listener in list(self.listeners):
                    listener()
                return True
        self.ok = False
        log.warning("no cluster node answered CLUSTER SLOTS (tried %d)", len(self._known))
        return False

    async def _ask(self, address: Address) -> Any:
        conn = await RedisConnection.open(self._endpoint.at(address), within=2.0)
        try:
            async with asyncio.timeout(2.0):  # not wait_for: see PubSubLink.close
                reply = await conn.command("CLUSTER", "SLOTS")
        finally:
            await conn.close()
        if isinstance(reply, Exception):
            raise ConnectionError(f"CLUSTER SLOTS refused: {reply}")
        return reply

    def _load(self, reply: Any) -> bool:
        owners: list[Address | None] = [None] * SLOTS
        for start, end, master, *replicas in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else master[0]
            owner = (host or "127.0.0.1", int(master[1]))
            owners[int(start) : int(end) + 1] = [owner] * (int(end) - int(start) + 1)
            for node in (master, *replicas):
                address = (_text(node[0]) or owner[0], int(node[1]))
                if address not in self._known:
                    self._known.append(address)
        if not any(owners):
            return False  # a node that knows no slots (not joined yet) is no authority
        self._owners = owners
        return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
