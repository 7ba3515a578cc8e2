"""The Redis connections the broker reads and writes itself: pub/sub links and publish pipes.

Why not redis-py's ``Connection`` for these: a busy pub/sub link or publish pipe receives many
replies per socket read, and parsing them all at once with hiredis costs about a microsecond
each, where redis-py's ``read_response`` is one awaited call per reply; a pipe also writes a whole
batch of commands without an await (gateway/broker/pipe.py has the figures). redis-py offers
neither through its public API, and its streams are private. So these few connections are opened
here: TCP, TLS or a unix socket, then the handshake (AUTH, SELECT) in RESP2. Everything else
(history reads, records, the command client) stays redis-py's.

The URL forms are the ones the rest of the gateway hands to redis-py (publisher/connect.py):
``redis://[[user]:pass@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix://[[user]:pass@]/path``
with ``?db=N``; the query's ``ssl_cert_reqs`` (none, optional, required), ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile`` and ``ssl_check_hostname`` set up TLS. Sentinel and Cluster
URLs carry auth and TLS for every node they lead to.

The embedded store (fakeredis) has no socket: :class:`ClientConnection` gives one of its
connections the same ``send``/``replies``/``close``, over redis-py's public calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from publisher.connect import RedisTarget, async_sentinel

__all__ = [
    "ClientConnection",
    "Connect",
    "Endpoint",
    "Link",
    "RedisConnection",
    "connector",
    "pack_args",
    "pack_command",
]

READ_SIZE = 65536
CONNECT_TIMEOUT = 5.0  # a hung Redis accepts the TCP connection but never answers the handshake

Arg = str | bytes | int


def _bulk(arg: Arg) -> bytes:
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, int):
        arg = b"%d" % arg
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def pack_args(*args: Arg) -> bytes:
    """RESP bulk strings: ``pack_args("PING", 1) == b"$4\\r\\nPING\\r\\n$1\\r\\n1\\r\\n"``."""
    return b"".join(map(_bulk, args))


def pack_command(*args: Arg) -> bytes:
    return b"*%d\r\n" % len(args) + pack_args(*args)


class Link(Protocol):
    """What a pub/sub link needs of its connection, real or embedded."""

    async def send(self, data: bytes) -> None: ...

    def replies(self) -> AsyncIterator[list[Any]]: ...

    async def close(self) -> None: ...


Connect = Callable[[], Awaitable[Link]]


@dataclass(frozen=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host:port
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: ssl.SSLContext | None = None

    def at(self, address: tuple[str, int]) -> Endpoint:
        """The same credentials and TLS, on another node."""
        return replace(self, host=address[0], port=address[1], path=None)


class RedisConnection:
    """One socket to Redis after the handshake. Error replies come as ``hiredis.ReplyError``
    values, not raised. Never cancel a read half-way and go on using the connection: close it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    @classmethod
    async def open(cls, endpoint: Endpoint, within: float = CONNECT_TIMEOUT) -> RedisConnection:
        async with asyncio.timeout(within):  # not wait_for: see PubSubLink.close
            if endpoint.path is not None:
                reader, writer = await asyncio.open_unix_connection(endpoint.path)
            else:
                reader, writer = await asyncio.open_connection(
                    endpoint.host, endpoint.port, ssl=endpoint.tls
                )
            conn = cls(reader, writer)
            try:
                await conn._handshake(endpoint)
            except BaseException:
                conn.abort()
                raise
        return conn

    async def _handshake(self, endpoint: Endpoint) -> None:
        commands: list[tuple[Arg, ...]] = []
        if endpoint.password is not None:
            user = (endpoint.username,) if endpoint.username else ()
            commands.append(("AUTH", *user, endpoint.password))
        if endpoint.db:
            commands.append(("SELECT", endpoint.db))
        for command in commands:
            reply = await self.command(*command)
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"redis refused {command[0]!s}: {reply}")

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def command(self, *args: Arg) -> Any:
        """One command and its reply (nothing else may be in flight)."""
        await self.send(pack_command(*args))
        async for replies in self.replies():
            return replies[0]  # one command, one reply; nothing else was asked for
        raise ConnectionError("redis closed the connection")  # pragma: no cover - replies raises

    async def replies(self) -> AsyncIterator[list[Any]]:
        """Every reply that has arrived, a list per socket read. Ends with ConnectionError when
        Redis closes the connection."""
        parser, reader = self._parser, self._reader
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("redis closed the connection")
            parser.feed(data)
            replies = []
            while (reply := parser.gets()) is not False:
                replies.append(reply)
            if replies:
                yield replies

    def usable(self) -> bool:
        return not (self._writer.transport.is_closing() or self._reader.at_eof())

    def abort(self) -> None:
        """Close now, dropping unsent bytes: a hung peer would never take them."""
        self._writer.transport.abort()

    async def close(self) -> None:
        self.abort()


class ClientConnection:
    """A redis-py connection (the embedded store's) behind the same calls as RedisConnection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def send(self, data: bytes) -> None:
        await self._conn.send_packed_command(data)

    async def replies(self) -> AsyncIterator[list[Any]]:
        while True:
            yield [await self._conn.read_response(timeout=math.inf, push_request=True)]

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone
            await self._conn.disconnect()


# -- where to connect ------------------------------------------------------------------------


def connector(target: RedisTarget) -> tuple[Callable[[], Awaitable[RedisConnection]], list[Any]]:
    """Opens a connection to ``target``'s Redis (standalone, or Sentinel's current master); and
    the redis-py clients it uses meanwhile (Sentinel's), for the broker to close at the end."""
    if target.mode == "cluster":
        raise ValueError("a cluster has one endpoint per node: use cluster_endpoint(target).at()")
    if target.mode == "standalone":
        endpoint = url_endpoint(target.url)
        return (lambda: RedisConnection.open(endpoint)), []
    base = cluster_endpoint(target)  # sentinel URLs carry auth and TLS the same way
    endpoint = replace(base, db=target.db)
    sentinel = async_sentinel(target, socket_connect_timeout=2.0)

    async def connect() -> RedisConnection:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            address = await sentinel.discover_master(target.service_name)
        return await RedisConnection.open(endpoint.at(address))

    return connect, list(sentinel.sentinels)


def cluster_endpoint(target: RedisTarget) -> Endpoint:
    """Auth and TLS for any node of a Cluster (or Sentinel) URL; place it with ``.at()``."""
    tls = _tls_context({}) if target.tls else None
    return Endpoint(username=target.username, password=target.password, tls=tls)


def url_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    scheme = parts.scheme.lower()
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    db = int(query.get("db", "0") or 0)
    if scheme == "unix":
        return Endpoint(path=unquote(parts.path), username=username, password=password, db=db)
    path_db = parts.path.strip("/")
    if path_db:
        db = int(path_db)
    tls = _tls_context(query) if scheme == "rediss" else None
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=username,
        password=password,
        db=db,
        tls=tls,
    )


_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _tls_context(query: dict[str, str]) -> ssl.SSLContext:
    """redis-py's defaults: verify the server against the system CAs (or ``ssl_ca_certs``)."""
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    reqs = _REQS.get(query.get("ssl_cert_reqs", "required").lower())
    if reqs is None:
        raise ValueError("ssl_cert_reqs must be none, optional or required")
    check = query.get("ssl_check_hostname", "true").lower() not in ("false", "0", "no")
    context.check_hostname = check and reqs != ssl.CERT_NONE
    context.verify_mode = reqs
    if "ssl_certfile" in query:
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    return context
