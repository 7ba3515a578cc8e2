"""Redis Cluster: one sharded pub/sub connection and one publish pipe per shard in use.

A channel lives in the slot of ``{C}`` (its stream key and its shard channel share it), so it is
served by one master. This process keeps one :class:`PubSubLink` per master that owns a channel it
follows (not per channel, not per subscriber), and ``SSUBSCRIBE``s each channel there. Publishes
go over one :class:`ScriptPipe` per master, announced with ``SPUBLISH`` on the same shard: nothing
crosses the cluster bus, so each shard added adds pub/sub capacity.

The cluster changes under us, and every change ends in a slot-map refresh and re-routing:

* a slot migrates: the old owner pushes ``sunsubscribe`` for its channels (or refuses a
  SSUBSCRIBE with ``MOVED``); a publish there is refused with ``MOVED`` (then sent once more to
  the new owner: Redis did not run it);
* a master dies: its link and pipe lose their connection; once a replica is promoted the map
  names it, and the channels move to a link to it.

Whenever channels move, or a link comes back after losing its connection, the handler's
``on_reconnected`` runs for those channels only (one shard's change costs the other shards'
channels nothing): the hub reads each one's history from where it stood, so the hole a move
leaves is filled, or signalled as a gap when a dead master took it along.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from gateway.broker.base import BrokerHandler
from gateway.broker.connection import Endpoint, RedisConnection
from gateway.broker.link import LinkEvents, PubSubLink
from gateway.broker.pipe import Redirected, ScriptPipe
from gateway.broker.slots import Address, SlotMap
from gateway.errors import BrokerUnavailable
from gateway.metrics import REDIS_RECONNECTS
from publisher.errors import BackendUnavailable

__all__ = ["ShardedPipes", "ShardedPubSub"]

log = logging.getLogger("gateway.broker")

FAILING_POLL = 0.5


class ShardedPubSub:
    def __init__(
        self,
        slots: SlotMap,
        endpoint: Endpoint,
        *,
        prefix: str,
        ping_interval: float,
        subscribe_timeout: float,
    ) -> None:
        self._slots = slots
        self._endpoint = endpoint
        self._prefix = prefix
        self._ping_interval = ping_interval
        self._subscribe_timeout = subscribe_timeout
        self._links: dict[Address, PubSubLink] = {}
        self._route: dict[str, Address] = {}
        self._handler: BrokerHandler | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._to_recover: set[str] = set()  # channels whose recovery is due
        self._closing: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.reconnects = 0
        slots.listeners.append(self._reroute)

    @property
    def ready(self) -> bool:
        """The map is known. One shard's failover does not make the whole process unready."""
        return self._slots.ok

    def set_handler(self, handler: BrokerHandler) -> None:
        self._handler = handler
        for link in self._links.values():
            link.events.on_message = handler.on_message

    async def start(self, wait: float = 5.0) -> None:
        try:
            async with asyncio.timeout(wait):
                await self._slots.refresh()
        except TimeoutError:
            pass
        if not self._slots.ok:
            log.warning("no cluster node reachable yet; starting not-ready and retrying")
        self._watcher = asyncio.create_task(self._watch(wait), name="cluster-slots-watch")

    async def _watch(self, interval: float) -> None:
        """Re-read the map every ``interval``, and every half second while a shard in use is
        unreachable: its replica's promotion shows in the map, not on the dead connection."""
        while True:
            failing = not self._slots.ok or not all(link.ready for link in self._links.values())
            await asyncio.sleep(FAILING_POLL if failing else interval)
            await self._slots.refresh()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links), *self._closing)
        if self._recovery is not None:
            self._recovery.cancel()

    # -- subscribing -------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        for _ in range(3):  # a channel that moves while we wait is followed to its new owner
            link = self._link_for(channel)
            try:
                return await link.subscribe(channel)
            except BrokerUnavailable:
                if self._route.get(channel) == link_address(link):
                    raise
        raise BrokerUnavailable(f"channel {channel} kept moving between cluster nodes")

    def unsubscribe(self, channel: str) -> None:
        address = self._route.pop(channel, None)
        link = self._links.get(address) if address else None
        if link is not None:
            link.unwant(channel)
            self._close_if_idle(link)

    def _link_for(self, channel: str) -> PubSubLink:
        address = self._slots.owner(channel)
        if address is None:
            self._slots.request_refresh()
            raise BrokerUnavailable("the cluster's slot map is not known yet")
        current = self._route.get(channel)
        if current is not None and current != address:
            self._links[current].unwant(channel)
        self._route[channel] = address
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = self._new_link(address)
        return link

    def _new_link(self, address: Address) -> PubSubLink:
        link = PubSubLink(
            connect=lambda: RedisConnection.open(self._endpoint.at(address)),
            prefix=self._prefix,
            sharded=True,
            ping_interval=self._ping_interval,
            subscribe_timeout=self._subscribe_timeout,
            name=f"{address[0]}:{address[1]}",
            events=LinkEvents(on_message=self._on_message, on_lost=self._slots.request_refresh),
        )
        if self._handler is not None:
            link.events.on_message = self._handler.on_message  # straight to the hub
        link.events.on_connected = lambda first: self._on_connected(link, first)
        link.events.on_moved = lambda channel: self._slots.request_refresh()
        link.launch()
        return link

    def _close_if_idle(self, link: PubSubLink) -> None:
        address = link_address(link)
        if link.wanted or self._links.get(address) is not link:
            return
        del self._links[address]
        task = asyncio.get_running_loop().create_task(link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- following the cluster ---------------------------------------------------------------

    def _on_message(self, channel: str, payload: bytes) -> None:
        if self._handler is not None:
            self._handler.on_message(channel, payload)

    def _on_connected(self, link: PubSubLink, first: bool) -> None:
        if first:
            log.info("redis shard %s: pub/sub connected", link.name)
            return
        self.reconnects += 1
        REDIS_RECONNECTS.inc()
        log.info("redis shard %s: pub/sub reconnected", link.name)
        self._recover(link.wanted)

    def _reroute(self) -> None:
        """A new map: move every channel whose owner changed, then recover what they missed."""
        moved = [c for c, a in self._route.items() if self._slots.owner(c) not in (a, None)]
        for channel in moved:
            self._link_for(channel).want(channel)
        for link in list(self._links.values()):
            self._close_if_idle(link)
        if moved:
            log.info("cluster slot map changed: %d followed channels moved", len(moved))
            self._recover(moved)

    def _recover(self, channels: Iterable[str]) -> None:
        """One recovery at a time; channels asked for meanwhile are recovered right after it."""
        self._to_recover.update(channels)
        if self._recovery is not None and not self._recovery.done():
            return
        if self._handler is not None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover_due())

    async def _recover_due(self) -> None:
        assert self._handler is not None
        while self._to_recover:
            channels, self._to_recover = self._to_recover, set()
            await self._handler.on_reconnected(channels)


def link_address(link: PubSubLink) -> Address:
    host, _, port = link.name.rpartition(":")
    return host, int(port)


class ShardedPipes:
    """One pipe per master running ``script`` (a SPUBLISH one: publisher.wire); a publish
    ``MOVED`` away is sent once more to the new owner."""

    def __init__(
        self,
        slots: SlotMap,
        endpoint: Endpoint,
        *,
        timeout: float,
        min_replicas: int,
        scripts: tuple[str, ...],
    ) -> None:
        self._slots = slots
        self._scripts = scripts
        self._endpoint = endpoint
        self._timeout = timeout
        self._min_replicas = min_replicas
        self._pipes: dict[Address, ScriptPipe] = {}

    async def call(self, channel: str, nargs: int, packed: bytes, script: int = 0) -> Any:
        """``script``: the index of one of this pipe's scripts (gateway.broker.factory)."""
        try:
            return await self._pipe_for(channel).call(nargs, packed, script)
        except Redirected as redirected:
            if redirected.ask is not None:
                # The slot is migrating and its keys have left: the importing node takes this one
                # call after ASKING. The map is unchanged until the move completes.
                return await self._pipe_at(redirected.ask).call(nargs, packed, script, True)
            await self._slots.refresh()
            return await self._pipe_for(channel).call(nargs, packed, script)
        except BackendUnavailable:
            self._slots.request_refresh()  # a dead master: its replica may own the slot soon
            raise

    def _pipe_for(self, channel: str) -> ScriptPipe:
        address = self._slots.owner(channel)
        if address is None:
            self._slots.request_refresh()
            raise BackendUnavailable("the cluster's slot map is not known yet")
        return self._pipe_at(address)

    def _pipe_at(self, address: Address) -> ScriptPipe:
        pipe = self._pipes.get(address)
        if pipe is None:
            pipe = self._pipes[address] = ScriptPipe(
                lambda: RedisConnection.open(self._endpoint.at(address)),
                *self._scripts,
                timeout=self._timeout,
                min_replicas=self._min_replicas,
            )
        return pipe

    async def close(self) -> None:
        pipes, self._pipes = list(self._pipes.values()), {}
        await asyncio.gather(*(pipe.close() for pipe in pipes))
