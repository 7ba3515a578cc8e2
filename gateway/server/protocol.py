"""HTTP/1.1 on an asyncio Protocol, parsed by ``httptools`` (the parser uvicorn uses).

Why our own: the stream and publish requests are most of a gateway's work, and an ASGI server
costs them a task, an ASGI message dict and a framing step per write (docs/design/transport.md).
Here a stream is written straight to the transport, and the hub writes each event's shared,
already chunk-framed bytes to every in-step stream in one loop.

Only public seams: the asyncio ``Protocol``/``Transport`` contract (``data_received``,
``connection_lost``, ``pause_writing``/``resume_writing``, ``transport.write``), which uvloop
implements, and ``httptools.HttpRequestParser``'s documented callbacks.

Hygiene, on every request (tests/integration/test_http_hygiene.py):

* the request head is bounded in size (:data:`MAX_HEAD`, else 431) and in time
  (:data:`HEAD_TIMEOUT` from its first byte, else 408); an idle keep-alive connection is closed
  after the server's keep-alive timeout;
* malformed requests get 400, including ``Content-Length`` with ``Transfer-Encoding`` (llhttp
  refuses it) and a repeated ``Content-Type`` (a proxy reading the other one would disagree);
* pipelined requests are answered one at a time, in order; reading pauses while
  :data:`MAX_PIPELINE` wait or a request body's buffer is full.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

import httptools
import orjson
from starlette.types import ASGIApp

from gateway.server import hot
from gateway.server.exchange import Exchange, response_head, run_asgi
from gateway.stream import ConnectionSink

__all__ = ["HEAD_TIMEOUT", "MAX_HEAD", "MAX_PIPELINE", "HttpProtocol"]

log = logging.getLogger("gateway.server")

MAX_HEAD = 64 * 1024  # request line + headers; a larger head gets 431
HEAD_TIMEOUT = 10.0  # seconds from a head's first byte to its end; then 408 and close
MAX_PIPELINE = 32  # parsed requests waiting for their turn before reading pauses
LINGER = 2.0  # seconds a rejected connection stays half-open for its answer to arrive


class _Rejected(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class HttpProtocol(asyncio.Protocol):
    """One connection. ``state`` is the app's lifespan state (hub, broker, settings...)."""

    def __init__(
        self,
        app: ASGIApp,
        state: dict[str, Any],
        *,
        keep_alive_timeout: float,
        root_path: str = "",
        tasks: set[asyncio.Task[None]] | None = None,
        connections: set[Any] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.keep_alive_timeout = keep_alive_timeout
        self.root_path = root_path
        self.tasks = tasks if tasks is not None else set()
        self.connections = connections if connections is not None else set()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.sink: ConnectionSink | None = None  # the stream this connection carries
        self._queue: collections.deque[Exchange] = collections.deque()
        self._current: Exchange | None = None
        self._parsing: Exchange | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0  # bytes of the current head's complete parts
        self._partial = 0  # bytes of the current head read while it stayed incomplete
        self._messages = 0
        self._in_head = False
        self._reject_answer: bytes | None = None
        self._discard = False  # rejected: read and drop until closed
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._reading_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._closing = False
        self._server: tuple[str, int] | None = None
        self._client: tuple[str, int] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)
        self._server = _address(transport.get_extra_info("sockname"))
        self._client = _address(transport.get_extra_info("peername"))
        self._arm(self.keep_alive_timeout, self._idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self._disarm()
        for exchange in (self._current, *self._queue, self._parsing):
            if exchange is not None:
                exchange.lost()
        if self.sink is not None:
            self.sink.lost()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        # Bytes of a head that spans reads: httptools holds a header line until it is complete,
        # so a head that never ends is measured here, read by read.
        if self._discard:
            return
        continuing, message = self._in_head, self._messages
        try:
            self.parser.feed_data(data)
            if self._in_head and continuing and message == self._messages:
                self._partial += len(data)
                if self._partial > MAX_HEAD:
                    raise _Rejected(431, "head_too_large", f"request head over {MAX_HEAD} bytes")
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here: the request was answered as plain HTTP
        except _Rejected as exc:
            self._reject(exc)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            if isinstance(cause, _Rejected):
                self._reject(cause)
            else:
                raise
        except httptools.HttpParserError as exc:
            self._reject(_Rejected(400, "invalid_request", f"malformed HTTP request: {exc}"))

    def pause_writing(self) -> None:
        self._paused = True
        if self.sink is not None:
            self.sink.pause()

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.sink is not None:
            self.sink.resume()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._messages += 1
        self._url, self._headers, self._head_size, self._partial = b"", [], 0, 0
        self._arm(HEAD_TIMEOUT, self._head_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_HEAD:
            raise _Rejected(414, "uri_too_long", f"request target over {MAX_HEAD} bytes")
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        self._headers.append((name.lower(), value))

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            raise _Rejected(431, "head_too_large", f"request head over {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if sum(name == b"content-type" for name, _ in self._headers) > 1:
            raise _Rejected(400, "invalid_request", "more than one Content-Type header")
        exchange = Exchange(self, self._scope(), self.parser.should_keep_alive(), self._expects())
        self._parsing = exchange
        self._queue.append(exchange)
        if len(self._queue) > MAX_PIPELINE:
            self._pause_reading()
        self._run_next()

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None and not self._parsing.feed(body):
            self._pause_reading()

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.finish_body()
            self._parsing = None

    # -- serving ------------------------------------------------------------------------------

    def _scope(self) -> dict[str, Any]:
        parsed = httptools.parse_url(self._url)
        raw_path = parsed.path
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": self.parser.get_http_version(),
            "server": self._server,
            "client": self._client,
            "scheme": "http",
            "method": self.parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": self._headers,
            "state": self.state.copy(),
            "extensions": {},
        }

    def _expects(self) -> bool:
        return (b"expect", b"100-continue") in self._headers

    def _run_next(self) -> None:
        if self._current is not None or not self._queue or self.transport.is_closing():
            return
        exchange = self._current = self._queue.popleft()
        if self._reading_paused and len(self._queue) < MAX_PIPELINE // 2:
            self._resume_reading()
        serve = hot.route(exchange.scope, self.state)
        coro = (
            serve(self, exchange) if serve is not None else run_asgi(self.app, exchange, self.done)
        )
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def done(self, keep_alive: bool) -> None:
        """The current exchange's response is written; next request, or close."""
        if self._current is not None:
            self._current.release()
        self._current = None
        self.sink = None
        if not keep_alive or (self._closing and self._reject_answer is None):
            self._close_after(b"")
        elif self._queue:
            self._run_next()
        elif self._reject_answer is not None:  # the requests before a bad one are answered
            self._answer_and_close(self._reject_answer)
        else:
            # Also mid-body: the rest of an answered request's body is read and dropped (the
            # client may still be sending it, e.g. after a 413 decided from Content-Length).
            self._resume_reading()
            self._arm(self.keep_alive_timeout, self._idle_timeout)

    def respond(
        self, exchange: Exchange, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A whole response in one write (the hot paths' answers)."""
        exchange.response_started = exchange.response_complete = True
        if not exchange.disconnected:
            close = not exchange.keep_alive or self._closing
            self.transport.write(response_head(status, headers, close) + body)
        self.done(exchange.keep_alive)

    def stream(self, exchange: Exchange, response: Any, headers: list[tuple[bytes, bytes]]) -> None:
        """Serve a :class:`~gateway.stream.StreamResponse` on this connection."""
        exchange.response_started = True
        head = response_head(200, [*headers, (b"transfer-encoding", b"chunked")], False)
        self.sink = response.serve(self.transport, head, self._stream_ended)
        if self._paused:
            self.sink.pause()

    def _stream_ended(self, keep_alive: bool) -> None:
        if self._current is not None:
            self._current.response_complete = True
            self.done(keep_alive and self._current.keep_alive)

    async def drain(self) -> None:
        """Wait while the transport asked us to stop writing (an ASGI response's ``send``)."""
        if self._paused and not self.transport.is_closing():
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None

    def body_consumed(self) -> None:
        if self._reading_paused and len(self._queue) < MAX_PIPELINE:
            self._resume_reading()

    def shutdown(self) -> None:
        """The server is stopping: close when idle, after the current response otherwise; an
        open stream ends now with its farewell (the hub's drain normally ended it already)."""
        self._closing = True
        if self._current is None:
            self.transport.close()
        elif self.sink is not None:
            self.sink.resp.subscription.close("shutdown")

    # -- limits ------------------------------------------------------------------------------

    def _reject(self, exc: _Rejected) -> None:
        """Answer a request we cannot parse and close: after whatever is still in flight."""
        self._pause_reading()
        self._in_head = False
        self._disarm()
        body = orjson.dumps({"error": exc.code, "detail": exc.detail})
        log.info("rejected request: %d %s: %s", exc.status, exc.code, exc.detail[:300])
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        answer = response_head(exc.status, headers, True) + body
        if self._current is None and not self._queue:
            self._answer_and_close(answer)
        else:
            self._reject_answer = answer  # after the answers in flight, in order (done())

    def _close_after(self, answer: bytes) -> None:
        """Close once ``answer`` is written; gently while the client may still be sending."""
        if self._parsing is None and not self._in_head:
            if answer:
                self.transport.write(answer)
            self.transport.close()
        else:
            self._answer_and_close(answer)

    def _answer_and_close(self, answer: bytes) -> None:
        """Write the answer, end our side (FIN) and close a little later: closing at once with
        the client's unread bytes in our buffer would reset the connection, and the client could
        lose the answer (e.g. a 413 decided from Content-Length while the body is still coming).
        Whatever it still sends meanwhile is dropped unread."""
        self._discard = True
        if answer:
            self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._resume_reading()
        self._arm(LINGER, self.transport.close)

    def _head_timeout(self) -> None:
        self._timer = None
        detail = f"request head not received in {HEAD_TIMEOUT:g}s"
        self._reject(_Rejected(408, "head_timeout", detail))

    def _idle_timeout(self) -> None:
        self._timer = None
        if self._current is None and not self._in_head:
            self.transport.close()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.transport.is_closing():
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
