"""Turn a Redis URL into a client, for standalone, Sentinel and Cluster deployments alike.

Accepted URLs (shared by the publisher library and the gateway):

* ``redis://[user:pass@]host:port/db``, ``rediss://...``, ``unix:///path.sock`` — standalone.
* ``redis+sentinel://[user:pass@]host1:port1,host2:port2/service_name/db`` — the master of
  ``service_name`` as the Sentinels report it (``rediss+sentinel://`` for TLS).
* ``redis+cluster://[user:pass@]host1:port1,host2:port2`` — a Redis Cluster (``rediss+cluster``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

__all__ = [
    "RedisTarget",
    "async_client",
    "async_sentinel",
    "node_client",
    "parse_redis_url",
    "sync_client",
]

Mode = Literal["standalone", "sentinel", "cluster"]


@dataclass(frozen=True)
class RedisTarget:
    mode: Mode
    url: str
    hosts: list[tuple[str, int]] = field(default_factory=list)
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        parts.port  # noqa: B018 - a malformed port raises ValueError here, not at the first connect
        return RedisTarget(mode="standalone", url=url)
    base, _, mode = scheme.partition("+")
    if base not in ("redis", "rediss") or mode not in ("sentinel", "cluster"):
        raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, _, pwd = auth.partition(":")
        username, password = unquote(user) or None, unquote(pwd) or None
    default_port = 26379 if mode == "sentinel" else 6379
    hosts = [_host_port(item, default_port) for item in netloc.split(",") if item]
    if not hosts:
        raise ValueError("a sentinel or cluster URL needs at least one host:port")
    path = [p for p in parts.path.split("/") if p]
    if mode == "sentinel":
        if not path:
            raise ValueError("a sentinel URL needs the service name: redis+sentinel://h:p/name/db")
        db = int(path[1]) if len(path) > 1 else 0
        return RedisTarget(
            "sentinel", url, hosts, path[0], db, username, password, base == "rediss"
        )
    return RedisTarget("cluster", url, hosts, "", 0, username, password, base == "rediss")


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if ":" not in item or item.endswith("]"):
        return item.strip("[]"), default_port
    host, _, port = item.rpartition(":")
    return host.strip("[]"), int(port)


def _auth(target: RedisTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def sync_client(target: RedisTarget, **options: Any) -> Any:
    """A blocking redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``)."""
    if target.mode == "standalone":
        return redis.Redis.from_url(target.url, **options)
    if target.mode == "sentinel":
        sentinel = redis.sentinel.Sentinel(target.hosts, sentinel_kwargs=_auth(target), **options)
        return sentinel.master_for(target.service_name, db=target.db, **_auth(target))
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in target.hosts]
    return redis.cluster.RedisCluster(startup_nodes=nodes, **_auth(target), **options)


def async_client(target: RedisTarget, **options: Any) -> Any:
    """An asyncio redis-py client (``redis.asyncio.Redis`` or its ``RedisCluster``)."""
    if target.mode == "standalone":
        return redis.asyncio.Redis.from_url(target.url, **options)
    if target.mode == "sentinel":
        sentinel = async_sentinel(target, **options)
        return sentinel.master_for(target.service_name, db=target.db, **_auth(target))
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.hosts]
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **_auth(target), **options)


def async_sentinel(target: RedisTarget, **options: Any) -> Any:
    """The asyncio ``Sentinel`` of a ``redis+sentinel://`` URL, with its auth and TLS."""
    return redis.asyncio.sentinel.Sentinel(target.hosts, sentinel_kwargs=_auth(target), **options)


def node_client(
    target: RedisTarget, address: tuple[str, int], *, asyncio: bool = False, **options: Any
) -> Any:
    """A plain client for one node of ``target``'s cluster, with its auth and TLS."""
    cls = redis.asyncio.Redis if asyncio else redis.Redis
    return cls(host=address[0], port=address[1], **_auth(target), **options)
