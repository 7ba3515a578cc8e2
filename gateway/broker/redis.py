"""The Redis broker: pub/sub, history reads and publishes, for every deployment.

Pub/sub is one :class:`~gateway.broker.link.PubSubLink` for a standalone or Sentinel Redis (and
fakeredis), or a :class:`~gateway.broker.shards.ShardedPubSub` (one link per shard in use) for a
Redis Cluster. Publishes go over a :class:`~gateway.broker.pipe.ScriptPipe` (one per master on a
cluster), or through redis-py on fakeredis, which has no socket to pipeline on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from gateway.broker.base import BrokerHandler, HistoryEntry
from gateway.broker.connection import Connect, pack_args
from gateway.broker.link import REDIS_ERRORS, LinkEvents, PubSubLink
from gateway.broker.pipe import ScriptPipe
from gateway.broker.records import RedisRecords
from gateway.broker.shards import ShardedPipes
from gateway.errors import BrokerUnavailable
from gateway.metrics import PUBLISH_TIMER, REDIS_RECONNECTS
from publisher.client import AsyncPublisher
from publisher.errors import PublishError
from publisher.idempotency import Idempotency
from publisher.idempotency import idempotency_key as key_for
from publisher.wire import (
    INDEXED_PUBLISH_SCRIPT,
    ZERO_ID,
    HistoryLimits,
    announce_channel,
    index_keys,
    publish_args,
    stream_key,
)

__all__ = ["PubSub", "RedisBroker", "SinglePubSub"]

log = logging.getLogger("gateway.broker")

HEADS_CACHED = 10_000  # channels whose packed script head is kept
KEYED = 1  # the publish pipes' second script: the idempotent publish (factory, shards)


class PubSub(Protocol):
    """The broker's pub/sub side: one connection, or one per cluster shard."""

    @property
    def ready(self) -> bool: ...

    def set_handler(self, handler: BrokerHandler) -> None: ...

    async def start(self, wait: float = 5.0) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    def unsubscribe(self, channel: str) -> None: ...


class SinglePubSub:
    """One pub/sub connection for the whole process; every reconnect starts a recovery."""

    def __init__(self, connect: Connect, *, prefix: str, ping_interval: float) -> None:
        self._handler: BrokerHandler | None = None
        self._link = PubSubLink(
            connect=connect,
            prefix=prefix,
            ping_interval=ping_interval,
            events=LinkEvents(on_message=self._on_message, on_connected=self._on_connected),
        )
        self._recovery: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def ready(self) -> bool:
        return self._link.ready

    def set_handler(self, handler: BrokerHandler) -> None:
        self._handler = handler
        self._link.events.on_message = handler.on_message  # straight to the hub: the hot path

    async def start(self, wait: float = 5.0) -> None:
        await self._link.start(wait)

    async def close(self) -> None:
        await self._link.close()

    async def subscribe(self, channel: str) -> None:
        await self._link.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        self._link.unwant(channel)

    def _on_message(self, channel: str, payload: bytes) -> None:
        if self._handler is not None:
            self._handler.on_message(channel, payload)

    def _on_connected(self, first: bool) -> None:
        if first:
            log.info("redis pub/sub connected")
            return
        self.reconnects += 1
        REDIS_RECONNECTS.inc()
        log.info("redis pub/sub reconnected (reconnect #%d)", self.reconnects)
        if self._handler is not None:
            self._recovery = asyncio.create_task(self._handler.on_reconnected(), name="recover")


class RedisBroker(RedisRecords):
    """The Broker (gateway.broker.base); its record methods are RedisRecords'."""

    def __init__(
        self,
        *,
        client: Any,
        key_prefix: str,
        pubsub_prefix: str,
        history: HistoryLimits,
        pubsub_connect: Connect | None = None,
        pubsub: PubSub | None = None,
        ping_interval: float = 5.0,
        extra_clients: list[Any] | None = None,
        publish_pipe: ScriptPipe | ShardedPipes | None = None,
        indexed_pipe: ScriptPipe | ShardedPipes | None = None,
    ) -> None:
        self._client = client
        self._extra_clients = extra_clients or []
        if pubsub is None:
            assert pubsub_connect is not None, "a broker needs pubsub or pubsub_connect"
            pubsub = SinglePubSub(pubsub_connect, prefix=pubsub_prefix, ping_interval=ping_interval)
        self._pubsub = pubsub
        self._key_prefix = key_prefix
        self._pubsub_prefix = pubsub_prefix
        self._publisher = AsyncPublisher(
            client=client, key_prefix=key_prefix, pubsub_prefix=pubsub_prefix, history=history
        )
        # Publishes over pipelined connections of their own (real Redis); through redis-py
        # otherwise (fakeredis has no socket).
        self._pipe = publish_pipe
        self._sharded = isinstance(publish_pipe, ShardedPipes)
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._history = history
        # publisher.wire.INDEXED_PUBLISH_SCRIPT (Mercure): its pipe is of publish_pipe's kind.
        self._indexed_pipe = indexed_pipe
        self._indexed_script = client.register_script(INDEXED_PUBLISH_SCRIPT)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._pubsub.ready

    @property
    def client(self) -> Any:
        """The command client, for the gateway's own keys (gateway.presence, gateway.channels)."""
        return self._client

    def set_handler(self, handler: BrokerHandler) -> None:
        self._pubsub.set_handler(handler)

    async def start(self, wait: float = 5.0) -> None:
        if self._sharded:
            await self._initialize_cluster_client()
        await self._pubsub.start(wait)

    async def _initialize_cluster_client(self) -> None:
        """Load redis-py's slot map before the first burst: a fresh async ``RedisCluster`` hit by
        dozens of concurrent commands at once fails some with "Connection lost" (redis-py 8.1,
        seen here with 32 channels joined at once)."""
        try:
            await self._client.initialize()
        except REDIS_ERRORS as exc:
            log.warning("redis cluster not reachable yet: %s", exc)

    async def close(self) -> None:
        for pipe in (self._pipe, self._indexed_pipe):
            if pipe is not None:
                await pipe.close()
        await self._pubsub.close()
        for client in (self._client, *self._extra_clients):
            await client.aclose()

    # -- the Broker interface ----------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        self._pubsub.unsubscribe(channel)

    async def history(self, channel: str, after: str, count: int) -> list[HistoryEntry]:
        key = stream_key(channel, self._key_prefix)
        try:
            raw = await self._client.xrange(key, min="(" + after, max="+", count=count)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return [_entry(entry_id, fields) for entry_id, fields in raw]

    async def history_before(
        self, channel: str, before: str | None, count: int
    ) -> list[HistoryEntry]:
        key = stream_key(channel, self._key_prefix)
        newest = "+" if before is None else "(" + before
        try:
            raw = await self._client.xrevrange(key, max=newest, min="-", count=count)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return [_entry(entry_id, fields) for entry_id, fields in reversed(raw)]

    async def last_id(self, channel: str) -> str:
        key = stream_key(channel, self._key_prefix)
        try:
            raw = await self._client.xrevrange(key, max="+", min="-", count=1)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return raw[0][0].decode() if raw else ZERO_ID

    async def publish(
        self,
        channel: str,
        batch: list[tuple[str, bytes]],
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        started = PUBLISH_TIMER.start()
        try:
            ids = await self._publish(channel, batch, idempotency)
        except PublishError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except REDIS_ERRORS as exc:  # whatever redis-py lets through must not become a 500
            raise BrokerUnavailable(f"redis failed the publish: {exc!r}") from exc
        PUBLISH_TIMER.done(started, len(ids))
        return ids

    async def _publish(
        self, channel: str, batch: list[tuple[str, bytes]], idempotency: Idempotency | None
    ) -> list[str]:
        if self._pipe is None:
            return await self._publisher.publish_encoded(channel, batch, idempotency)
        if idempotency is None:
            nargs, packed = self._command(channel, batch)
            script = 0
        else:
            nargs, packed = self._keyed_command(channel, batch, idempotency)
            script = KEYED
        return [raw.decode() for raw in await _call(self._pipe, channel, nargs, packed, script)]

    async def publish_indexed(self, channel: str, batch: list[tuple[str, bytes]]) -> list[str]:
        # The same pipe kind as publish (per shard on a cluster, with its SPUBLISH twin), one of
        # its own: a pipe runs one script. Rare next to ours, so nothing is cached per channel.
        started = PUBLISH_TIMER.start()
        keys = [stream_key(channel, self._key_prefix), *index_keys(channel, self._key_prefix)]
        args = publish_args(
            channel, batch, self._history, self._pubsub_prefix, sharded=self._sharded
        )
        try:
            if self._indexed_pipe is None:
                ids = await self._indexed_script(keys=keys, args=args)
            else:
                packed = pack_args(len(keys), *keys, *args)
                ids = await _call(self._indexed_pipe, channel, 1 + len(keys) + len(args), packed)
        except PublishError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"publish failed: {exc!r}") from exc
        PUBLISH_TIMER.done(started, len(ids))
        return [raw.decode() for raw in ids]

    async def find_indexed(self, channel: str, own_id: str) -> str | None:
        index, _ = index_keys(channel, self._key_prefix)
        try:
            raw = await self._client.hget(index, own_id)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"index read failed: {exc}") from exc
        return raw.decode() if raw is not None else None

    def _keyed_command(
        self, channel: str, batch: list[tuple[str, bytes]], idempotency: Idempotency
    ) -> tuple[int, bytes]:
        """The idempotent script's call: the publish script's, with the idempotency key as
        KEYS[2] and the window as the last argument (publisher.idempotency). Rare: not cached."""
        keys = (
            stream_key(channel, self._key_prefix),
            key_for(channel, idempotency.key, self._key_prefix),
        )
        fixed = publish_args(
            channel, batch, self._history, self._pubsub_prefix, sharded=self._sharded
        )
        args = (2, *keys, *fixed, idempotency.ttl_ms)
        return len(args), pack_args(*args)

    def _command(self, channel: str, batch: list[tuple[str, bytes]]) -> tuple[int, bytes]:
        """The publish script's key and arguments, packed: a channel's key and settings once
        (cached), then the batch's ``(event, data)`` pairs, which publish_args puts last."""
        head = self._heads.get(channel)
        if head is None:
            key = stream_key(channel, self._key_prefix)
            fixed = publish_args(
                channel, [], self._history, self._pubsub_prefix, sharded=self._sharded
            )
            head = (2 + len(fixed), pack_args(1, key, *fixed))
            if len(self._heads) < HEADS_CACHED:
                self._heads[channel] = head
        nargs, packed = head
        return nargs + 2 * len(batch), packed + pack_args(*(x for pair in batch for x in pair))

    async def announce(self, channel: str, payload: bytes) -> int:
        """Send ``payload`` to every process subscribed to ``channel`` (:meth:`subscribe`), stored
        nowhere: SPUBLISH on its shard channel on a cluster, PUBLISH elsewhere. Returns how many
        connections received it. Raises BrokerUnavailable."""
        command = "SPUBLISH" if self._sharded else "PUBLISH"
        name = announce_channel(channel, self._pubsub_prefix, sharded=self._sharded)
        try:
            return int(await self._client.execute_command(command, name, payload))
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"redis failed the announcement: {exc!r}") from exc

    async def ping(self) -> bool:
        if isinstance(self._pipe, ShardedPipes):
            # A cluster answers as long as its slot map can be read (re-read on every error):
            # one shard's failover must not take every gateway out of its load balancer.
            return self._pubsub.ready
        try:
            return bool(await self._client.ping())
        except REDIS_ERRORS:
            return False


async def _call(
    pipe: ScriptPipe | ShardedPipes, channel: str, nargs: int, packed: bytes, script: int = 0
) -> Any:
    """Run a packed script call on ``pipe``; a cluster's pipes pick the channel's shard."""
    if isinstance(pipe, ShardedPipes):
        return await pipe.call(channel, nargs, packed, script)
    return await pipe.call(nargs, packed, script)


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> HistoryEntry:
    return HistoryEntry(
        id=entry_id.decode(),
        prev=fields.get(b"p", b"").decode(),
        event=fields.get(b"e", b"").decode(),
        data=fields.get(b"d", b"null"),
    )
