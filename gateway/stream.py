"""One stream's response, served either by any ASGI server or straight on a connection of the
gateway's own HTTP/1.1 protocol (:mod:`gateway.server`).

A route returns a :class:`StreamResponse` built from a :class:`~gateway.subscription.Subscription`
and a stream format (what :func:`gateway.sse.open_stream` does; any route may build one the same
way). The response is a plain ASGI response: under any server it writes its body from the
request's task (:meth:`StreamResponse.__call__`). Under the gateway's protocol the hot routes
hand it to :meth:`StreamResponse.serve` instead, and it becomes a :class:`ConnectionSink`: no task,
no ASGI message per write; the subscription writes to the connection's transport, and the hub
writes each event's shared bytes to it directly (:mod:`gateway.hub`).

What a stream honours, the same on both paths:

* the send timeout is the hub's write watchdog (one timer per process, :meth:`Hub.run_watchdog`),
  the only place it lives: a write that waits (an ASGI ``send`` that has not returned, or a
  transport that asked us to pause) stamps ``subscription.writing_since``; one stuck longer than
  ``send_timeout`` is aborted as ``send_timeout``;
* a vanished client ends it: ``connection_lost`` on our protocol, ``http.disconnect`` from
  ``receive`` under another server (one watcher task per stream there);
* the subscription's buffer is bounded (it closes itself as ``slow``); shutdown is the hub's drain;
  token expiry a timer set by :func:`gateway.sse.open_stream`;
* its close callbacks (leave the hub, release the stream slot) run exactly once however it ends,
  then one "stream closed" log line and the close-reason counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.errors import BrokerUnavailable

if TYPE_CHECKING:
    from gateway.events import StreamFormat
    from gateway.hub import Hub
    from gateway.subscription import Subscription

__all__ = ["EXTENSION", "ConnectionSink", "StreamResponse", "chunk_frame"]

log = logging.getLogger("gateway.streams")

Header = tuple[bytes, bytes]
# ASGI scope extension our protocol offers (gateway.server.exchange): ``await adopt(response)``
# serves a stream response on the connection itself and returns when the stream has ended.
EXTENSION = "gateway.stream"
LAST_CHUNK = b"0\r\n\r\n"


def chunk_frame(data: bytes) -> bytes:
    """HTTP/1.1 chunked framing (RFC 9112 7.1). The same for every single-channel stream of a
    channel, so the hub frames each event once per format."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class StreamResponse(Response):
    """An endless response: ``opening`` bytes, then the replay (if any), then live events."""

    def __init__(
        self,
        hub: Hub,
        subscription: Subscription,
        *,
        opening: bytes,
        replay: Callable[[], AsyncIterator[bytes]] | None,
        retry_ms: int,
        headers: Mapping[str, str],
        nagle: bool = False,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.hub = hub
        self.subscription = subscription
        self.format: StreamFormat = subscription.renderer
        self.raw_headers = list(_raw_headers(self.format.media_type, tuple(headers.items())))
        self.opening = opening
        self.replay = replay
        self.retry_ms = retry_ms
        self.nagle = nagle
        self.on_close: list[Callable[[], None]] = []
        self._started = time.monotonic()
        self._closed = False
        # The request's context (its request id): the end may be noticed in a callback.
        self._context = contextvars.copy_context()

    # -- any ASGI server --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self.subscription
        reason = "error"  # unless it ends below; a cancellation not ours re-raises
        body = self._body()
        adopt = scope.get("extensions", {}).get(EXTENSION) if scope["method"] != "HEAD" else None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if adopt is not None:  # the gateway's protocol: served on its transport, no sends
                await adopt(self)
                return
            metrics.STREAMS_OPENED.inc()
            if scope["method"] != "HEAD":  # HEAD: headers only, the stream never starts
                await self._write_body(body, receive, send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            reason = "client"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if adopt is not None:
                subscription.abort("shutdown")  # the server gave up waiting: drop the stream
            if not subscription.aborted or task is None or task.uncancel() > 0 or adopt:
                raise
        finally:
            subscription.task = None  # no abort may land in the code that runs after us
            await body.aclose()
            self.closed(subscription.close_reason or reason)

    async def _write_body(self, body: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
        subscription = self.subscription
        subscription.task = asyncio.current_task()
        watcher = asyncio.create_task(_watch_disconnect(receive, subscription))
        loop = asyncio.get_running_loop()
        try:
            async for chunk in body:
                subscription.writing_since = loop.time()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                subscription.writing_since = 0.0
        finally:
            subscription.writing_since = 0.0
            watcher.cancel()

    async def _body(self) -> AsyncGenerator[bytes]:
        subscription = self.subscription
        try:
            yield self.opening
            if self.replay is not None:
                async for chunk in self.replay():
                    yield chunk
            async for chunk in subscription.chunks():
                yield chunk
            yield self.format.farewell(subscription.close_reason)
        except BrokerUnavailable as exc:
            log.warning("ending stream: %s", exc)
            yield self.format.unavailable(self.retry_ms)

    # -- the gateway's own protocol ----------------------------------------------------------

    def serve(
        self, transport: asyncio.WriteTransport, head: bytes, on_end: Callable[[bool], None]
    ) -> ConnectionSink:
        """Write the head and the opening in one write and stream on ``transport``; ``on_end``
        is called once with whether the connection may carry another request."""
        sink = ConnectionSink(self, transport, on_end)
        sink.start(head)
        return sink

    # -- both --------------------------------------------------------------------------------

    def closed(self, reason: str) -> None:
        """Run the close callbacks, count and log the stream's end; once."""
        if self._closed:
            return
        self._closed = True
        for callback in self.on_close:
            callback()
        metrics.stream_closed(reason)
        extra = {
            "reason": reason,
            "seconds": round(time.monotonic() - self._started, 3),
            "channels": len(self.subscription.channels),
        }
        self._context.run(log.info, "stream closed", extra=extra)


class ConnectionSink:
    """A stream written straight to an asyncio transport in chunked framing: the subscription's
    :class:`~gateway.subscription.Sink`. The protocol forwards ``pause_writing``,
    ``resume_writing`` and ``connection_lost`` to :meth:`pause`, :meth:`resume` and :meth:`lost`.
    """

    __slots__ = ("_done", "_live", "_on_end", "_paused", "_resumed", "_task", "_transport", "resp")

    def __init__(
        self,
        response: StreamResponse,
        transport: asyncio.WriteTransport,
        on_end: Callable[[bool], None],
    ) -> None:
        self.resp = response
        self._transport = transport
        self._on_end = on_end
        self._live = False  # replay done: live items may be written
        self._paused = False
        self._done = False
        self._resumed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, head: bytes) -> None:
        metrics.STREAMS_OPENED.inc()
        response = self.resp
        response.subscription.sink = self
        if response.nagle:
            _allow_nagle(self._transport)
        self._transport.write(head + chunk_frame(response.opening))
        if response.replay is None:
            self._go_live()
        else:
            self._task = asyncio.get_running_loop().create_task(self._replay())

    async def _replay(self) -> None:
        response = self.resp
        assert response.replay is not None
        try:
            async for chunk in response.replay():
                if response.subscription.close_reason is not None:
                    break  # _go_live ends it
                self._transport.write(chunk_frame(chunk))
                if self._paused:
                    await self._until_resumed()
        except BrokerUnavailable as exc:
            log.warning("ending stream: %s", exc)
            self._end_with(response.format.unavailable(response.retry_ms), "error")
            return
        self._go_live()

    async def _until_resumed(self) -> None:
        self._resumed = asyncio.get_running_loop().create_future()
        try:
            await self._resumed
        finally:
            self._resumed = None

    def _go_live(self) -> None:
        self._task = None
        self._live = True
        subscription = self.resp.subscription
        if subscription.close_reason is not None:
            self.closed()
        else:
            subscription.flush()  # what arrived meanwhile (cursor applied), then direct writes

    # -- the subscription's side (gateway.subscription.Sink) ----------------------------------

    def writable(self) -> bool:
        return self._live and not self._paused and not self._done

    def write(self, chunk: bytes) -> None:
        self._transport.write(chunk_frame(chunk))

    def drained(self) -> None:
        subscription = self.resp.subscription
        if not subscription.multi and subscription.direct_state is None:
            self.resp.hub.promote(subscription, self.resp.format, self._transport.write)

    def leave_direct(self) -> None:
        self.resp.hub.demote(self.resp.subscription)

    def closed(self) -> None:
        # Not from inside the hub's loops or the subscription's push: on the next loop turn.
        if self._live and not self._done:
            asyncio.get_running_loop().call_soon(self._farewell)

    def abort(self) -> None:
        self._transport.abort()  # connection_lost follows: lost() ends the stream

    # -- the connection's side ----------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True
        self.resp.subscription.writing_since = asyncio.get_running_loop().time()
        self.resp.hub.demote(self.resp.subscription)

    def resume(self) -> None:
        self._paused = False
        self.resp.subscription.writing_since = 0.0
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        if self._live:
            self.resp.subscription.flush()

    def lost(self) -> None:
        self.resp.subscription.close("client")
        self._finish("client", keep_alive=False)

    def _farewell(self) -> None:
        subscription = self.resp.subscription
        reason = subscription.close_reason or "closed"
        self._end_with(self.resp.format.farewell(reason), reason)

    def _end_with(self, last: bytes, reason: str) -> None:
        if self._done:
            return
        clean = not self._transport.is_closing()
        if clean:
            self._transport.write(chunk_frame(last) + LAST_CHUNK)
        self._finish(reason, keep_alive=clean and not self._paused)

    def _finish(self, reason: str, *, keep_alive: bool) -> None:
        if self._done:
            return
        self._done = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        subscription = self.resp.subscription
        subscription.writing_since = 0.0
        self.resp.hub.demote(subscription)
        self.resp.closed(subscription.close_reason or reason)
        subscription.sink = None
        self._on_end(keep_alive)


@functools.cache
def _raw_headers(media_type: str, headers: tuple[tuple[str, str], ...]) -> tuple[Header, ...]:
    """Starlette's encoding of a response's headers, done once per kind of stream: every stream
    then shares the same byte strings instead of holding its own (~0.5 KiB each)."""
    encoded = Response(media_type=media_type, headers=dict(headers)).raw_headers
    return tuple(header for header in encoded if header[0] != b"content-length")  # endless body


async def _watch_disconnect(receive: Receive, subscription: Subscription) -> None:
    """Under an ASGI server, ``send`` returns quietly once the peer is gone, so only ``receive``
    tells us (the heartbeat would write into the void for ever)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    subscription.abort("client")


def _allow_nagle(transport: asyncio.BaseTransport) -> None:
    """Nagle back on for this connection (asyncio and uvloop set TCP_NODELAY on every one)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
