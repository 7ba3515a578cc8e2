"""Build the broker for a deployment: standalone, Sentinel or Cluster Redis, or embedded.

The embedded store is fakeredis running in this process: the same broker, the same Lua publish
script, the same streams and pub/sub, so there is one code path to keep correct.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.broker.connection import ClientConnection, Connect, cluster_endpoint, connector
from gateway.broker.pipe import ScriptPipe
from gateway.broker.redis import PubSub, RedisBroker
from gateway.broker.shards import ShardedPipes, ShardedPubSub
from gateway.broker.slots import SlotMap
from gateway.settings import Settings
from publisher.connect import RedisTarget, async_client, parse_redis_url
from publisher.idempotency import IDEMPOTENT_PUBLISH_SCRIPT, IDEMPOTENT_SHARDED_PUBLISH_SCRIPT
from publisher.wire import (
    INDEXED_PUBLISH_SCRIPT,
    PUBLISH_SCRIPT,
    SHARDED_INDEXED_PUBLISH_SCRIPT,
    SHARDED_PUBLISH_SCRIPT,
)

__all__ = ["create_broker"]

log = logging.getLogger("gateway.broker")


def command_options(timeout: float) -> dict[str, Any]:
    """Commands fail fast during an outage (publish answers 503 instead of hanging): one retry,
    on a connection error only, so a pooled connection made stale by a Redis restart is replaced
    transparently - but a *timeout* (a hung or partitioned Redis) is not retried, which keeps a
    publish's worst case at about one ``timeout`` (GATEWAY_REDIS_TIMEOUT) instead of two."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 2.0),
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
    }


def create_broker(settings: Settings) -> RedisBroker:
    common: dict[str, Any] = {
        "key_prefix": settings.key_prefix,
        "pubsub_prefix": settings.pubsub_prefix,
        "history": settings.history,
        "ping_interval": settings.redis_ping_interval,
    }
    if settings.redis_url is None:
        client, pubsub_client = _embedded_clients()
        connect = _connector(pubsub_client)
        return RedisBroker(
            client=client, pubsub_connect=connect, extra_clients=[pubsub_client], **common
        )
    target = parse_redis_url(settings.redis_url)
    client = _command_client(target, settings)
    if target.mode == "cluster":
        pubsub, pipes, indexed = _cluster_sides(target, settings)
        return RedisBroker(
            client=client, pubsub=pubsub, publish_pipe=pipes, indexed_pipe=indexed, **common
        )
    connect, helpers = connector(target)
    pipe, indexed_pipe = (
        ScriptPipe(
            connect,
            *scripts,
            timeout=settings.redis_timeout,
            min_replicas=settings.publish_min_replicas,
        )
        for scripts in (PUBLISH_SCRIPTS, (INDEXED_PUBLISH_SCRIPT,))
    )
    return RedisBroker(
        client=client,
        pubsub_connect=connect,
        extra_clients=helpers,
        publish_pipe=pipe,
        indexed_pipe=indexed_pipe,
        **common,
    )


# A publish pipe's scripts, by the index a call names: plain, and keyed (redis.KEYED).
PUBLISH_SCRIPTS = (PUBLISH_SCRIPT, IDEMPOTENT_PUBLISH_SCRIPT)
SHARDED_PUBLISH_SCRIPTS = (SHARDED_PUBLISH_SCRIPT, IDEMPOTENT_SHARDED_PUBLISH_SCRIPT)


def _cluster_sides(
    target: RedisTarget, settings: Settings
) -> tuple[PubSub, ShardedPipes, ShardedPipes]:
    """Sharded pub/sub and per-master publish pipes (ours and Mercure's indexed publish) over one
    slot map, with the URL's auth. Pipes connect on their first call."""
    endpoint = cluster_endpoint(target)
    slots = SlotMap(target.hosts, endpoint)
    pubsub = ShardedPubSub(
        slots,
        endpoint,
        prefix=settings.pubsub_prefix,
        ping_interval=settings.redis_ping_interval,
        subscribe_timeout=5.0,
    )
    pipes, indexed = (
        ShardedPipes(
            slots,
            endpoint,
            timeout=settings.redis_timeout,
            min_replicas=settings.publish_min_replicas,
            scripts=scripts,
        )
        for scripts in (SHARDED_PUBLISH_SCRIPTS, (SHARDED_INDEXED_PUBLISH_SCRIPT,))
    )
    return pubsub, pipes, indexed


def _embedded_clients() -> tuple[Any, Any]:
    import fakeredis  # imported here: only the embedded mode pays for it

    server = fakeredis.FakeServer()
    return fakeredis.FakeAsyncRedis(server=server), fakeredis.FakeAsyncRedis(server=server)


def _command_client(target: RedisTarget, settings: Settings) -> Any:
    """History reads and publishes. For a standalone Redis the pool *blocks* (up to the command
    timeout) when all its connections are busy instead of failing: a burst of thousands of joins
    then queues for a connection rather than answering 503 "Too many connections"."""
    options = command_options(settings.redis_timeout)
    if target.mode != "standalone":
        return async_client(target, max_connections=settings.redis_max_connections, **options)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        target.url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        **options,
    )
    return redis.asyncio.Redis(connection_pool=pool)


def _connector(pubsub_client: Any) -> Connect:
    """The embedded store's pub/sub connection (fakeredis: no socket to own)."""

    async def connect() -> ClientConnection:
        pool = pubsub_client.connection_pool
        conn = await pool.get_connection()
        # This pool serves nothing but the broker's single pub/sub connection, so handing the
        # connection back at once lets the next reconnect reuse the same object.
        await pool.release(conn)
        await conn.connect()
        return ClientConnection(conn)

    return connect
