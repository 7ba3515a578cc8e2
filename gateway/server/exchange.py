"""One request on a connection of :class:`~gateway.server.protocol.HttpProtocol`: its ASGI scope,
its body as ASGI ``receive`` messages, and an ASGI ``send`` that writes the response in
HTTP/1.1 framing (chunked unless the app set a Content-Length).

The head of a response is held back until its first body bytes, so both leave in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Protocol

from starlette.types import ASGIApp, Message, Scope

from gateway.stream import EXTENSION, ConnectionSink, StreamResponse

__all__ = ["Connection", "Exchange", "response_head"]

log = logging.getLogger("gateway.server")

BODY_BUFFER = 256 * 1024  # request body bytes held for a reader before reading pauses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Connection(Protocol):
    """What an exchange needs of its connection."""

    transport: asyncio.Transport
    sink: ConnectionSink | None

    def drain(self) -> Awaitable[None]: ...

    def body_consumed(self) -> None: ...


def response_head(status: int, headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, phrase)]
    lines += [b"%b: %b\r\n" % (name, value) for name, value in headers]
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class Exchange:
    """A request's state. The protocol fills the body in; a handler reads it with :meth:`receive`
    and answers with :meth:`send` (ASGI) or by writing to the connection itself (hot paths)."""

    __slots__ = (
        "_body",
        "_buffered",
        "_chunked",
        "_ended",
        "_head",
        "_head_only",
        "_waiter",
        "complete",
        "conn",
        "disconnected",
        "expect_continue",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
    )

    def __init__(self, conn: Connection, scope: Scope, keep_alive: bool, expect: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect
        self.complete = False  # the whole body has been parsed
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._body: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False  # the last body message was received
        self._head = b""
        self._chunked = False
        self._head_only = scope["method"] == "HEAD"
        scope["extensions"][EXTENSION] = self.adopt

    # -- the protocol's side ------------------------------------------------------------------

    def release(self) -> None:
        """The response is written: break the scope -> ``adopt`` -> exchange cycle, so the
        finished request is freed by reference counting. The CLI runs the cyclic collector
        rarely (``gateway.app._tune_gc``), and a soak showed RSS creeping with uncollected
        exchanges (docs/performance.md)."""
        self.scope["extensions"].pop(EXTENSION, None)

    def feed(self, body: bytes) -> bool:
        """Add parsed body bytes; True while the buffer is under its bound."""
        if self.response_complete:
            return True  # answered without reading it all: the rest is dropped
        self._body.append(body)
        self._buffered += len(body)
        self._wake()
        return self._buffered < BODY_BUFFER

    def finish_body(self) -> None:
        self.complete = True
        self._wake()

    def lost(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- ASGI receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self._body or (self.complete and not self._ended):
                return self._take()
            if self.expect_continue and not self.response_started:
                self.expect_continue = False
                self.conn.transport.write(_CONTINUE)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _take(self) -> Message:
        body = b"".join(self._body)
        self._body.clear()
        if self._buffered >= BODY_BUFFER:
            self.conn.body_consumed()
        self._buffered = 0
        if self.complete:
            self._ended = True
        return {"type": "http.request", "body": body, "more_body": not self.complete}

    async def adopt(self, response: StreamResponse) -> None:
        """Serve a stream response that came through the app (any route) on the connection, as
        the hot path does; return when it has ended. The head went through the app's
        middlewares already (``http.response.start``) and leaves with the stream's first bytes."""
        if not self._chunked or self.disconnected:
            raise RuntimeError("a stream needs a chunked response on a live connection")
        ended = asyncio.get_running_loop().create_future()

        def on_end(keep_alive: bool) -> None:
            self.response_complete = True
            self.keep_alive = self.keep_alive and keep_alive
            if not ended.done():
                ended.set_result(None)

        head, self._head = self._head, b""
        self.conn.sink = response.serve(self.conn.transport, head, on_end)
        await ended

    # -- ASGI send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.disconnected or self.response_complete:
            return  # as uvicorn: a vanished client is told by receive, not by send
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body" and self.response_started:
            await self._body_message(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _start(self, message: Message) -> None:
        if self.response_started:
            raise RuntimeError("response already started")
        self.response_started = True
        status: int = message["status"]
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
        names = {name for name, _ in headers}
        if b"connection" in names and (b"connection", b"close") in headers:
            self.keep_alive = False
            headers = [h for h in headers if h[0] != b"connection"]
        bodyless = self._head_only or status < 200 or status in (204, 304)
        if b"content-length" not in names and not bodyless:
            self._chunked = True
            headers.append((b"transfer-encoding", b"chunked"))
        self._head = response_head(status, headers, not self.keep_alive)

    async def _body_message(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        out = self._head
        self._head = b""
        if not self._head_only:
            if self._chunked:
                if body:
                    out += b"%x\r\n%b\r\n" % (len(body), body)
                if not more:
                    out += b"0\r\n\r\n"
            else:
                out += body
        if not more:
            self.response_complete = True
            self._wake()
        if out:
            self.conn.transport.write(out)
        await self.conn.drain()


async def run_asgi(app: ASGIApp, exchange: Exchange, done: Callable[[bool], None]) -> None:
    """Serve ``exchange`` with ``app``; ``done(keep_alive)`` once the response is written."""
    try:
        await app(exchange.scope, exchange.receive, exchange.send)
    except Exception:
        log.exception("the application raised")
        if not exchange.response_started:
            await _internal_error(exchange)
    finally:
        if not exchange.response_complete and not exchange.disconnected:
            if not exchange.response_started:
                log.error("the application returned without a response")
                await _internal_error(exchange)
            else:
                exchange.keep_alive = False  # a response cut short: the framing is broken
        done(exchange.keep_alive and exchange.response_complete)


async def _internal_error(exchange: Exchange) -> None:
    body = b'{"error":"internal","detail":"internal error"}'
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    exchange.keep_alive = False
    await exchange.send({"type": "http.response.start", "status": 500, "headers": headers})
    await exchange.send({"type": "http.response.body", "body": body})
