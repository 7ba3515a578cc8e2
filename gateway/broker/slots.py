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

import redis.asyncio
from redis.crc import key_slot

from gateway.broker.link import REDIS_ERRORS

__all__ = ["Address", "SlotMap", "channel_slot", "connect_node"]

log = logging.getLogger("gateway.broker")

Address = tuple[str, int]
SLOTS = 16384


def channel_slot(channel: str) -> int:
    """The slot of a channel's stream key and shard channel (both hash-tagged ``{C}``)."""
    return key_slot(b"{" + channel.encode() + b"}")


async def connect_node(address: Address, options: dict[str, Any]) -> Any:
    """A connected redis-py asyncio ``Connection`` to one node (``ssl=True`` for TLS).

    Bounded: a hung node accepts the TCP connection but never answers the handshake."""
    options = dict(options)
    cls = redis.asyncio.SSLConnection if options.pop("ssl", False) else redis.asyncio.Connection
    conn = cls(host=address[0], port=address[1], **options)
    try:
        async with asyncio.timeout(5.0):
            await conn.connect()  # type: ignore[no-untyped-call]
    except BaseException:
        await conn.disconnect()
        raise
    return conn


class SlotMap:
    def __init__(self, seeds: list[Address], connection_options: dict[str, Any]) -> None:
        self._known: list[Address] = list(seeds)
        self._options = connection_options
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
        conn = await connect_node(address, self._options)
        try:
            async with asyncio.timeout(2.0):  # not wait_for: see PubSubLink.close
                await conn.send_command("CLUSTER", "SLOTS")
                return await conn.read_response()  # the raw reply: no redis-py parsing
        finally:
            await conn.disconnect()

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
