"""Load limits: a cap on open streams per process, and the stream response that honours it.

    BrokerUnavailable (gateway.errors)
    └── OverCapacity       this process holds ``max_connections`` streams: 503 + Retry-After

Why 503 and not 429 for the connection cap: the client did nothing wrong and is not over a
personal quota; this replica is full and another one (or this one, shortly) can serve it. 429 is
kept for nothing: a stream asking for more channels than ``max_channels_per_stream`` is a 400
(retrying the same request can never succeed).

:class:`StreamResponse` replaces sse-starlette's ``EventSourceResponse`` on the hot path. That one
costs, per connection, an anyio task group with three tasks (stream, disconnect listener, shutdown
watcher), and per write an anyio cancel scope (its send timeout) under three ``send`` wrappers of
the middleware stack: about half the CPU of a fan-out and most of the memory of an idle stream.
Ours is no extra task per stream and a bare ``send`` per write:

* the body is written in the request's own task, straight to the server's ``send`` (the app keeps
  it in the scope, :data:`RAW_SEND`); only the response start goes through the middlewares. The
  head and the preamble leave in one write. Live events are written without even that task while
  it is parked and the socket is writable (``DirectWriter``, ``Subscription._flush``): no task
  step per subscriber per message. (These three, and the disconnect callback, reach into
  uvicorn's connection objects: :mod:`gateway.uvicorn_io`.);
* a vanished client is noticed by uvicorn's own disconnect signal, not by a task per stream
  waiting on ``receive`` (that task remains the way under other servers);
* the send timeout is the hub's write watchdog (one timer per process, :meth:`Hub.run_watchdog`):
  each write stamps ``subscription.writing_since``; one stuck longer than ``send_timeout`` (a
  stalled or vanished client) aborts the stream quietly and is counted as ``send_timeout``;
* shutdown is the hub's drain (:mod:`gateway.shutdown`), not a per-connection watcher;
* HEAD answers the headers with an empty body (the stream never starts);
* its close callbacks (leave the hub) run however the response ends - normally, aborted, on a
  write error, or before its body iterator ever started (the iterator's own ``finally`` does not
  run then, which would leave the subscription registered in the hub for ever);
* one structured log line and the close-reason counters when the stream ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.errors import BrokerUnavailable
from gateway.uvicorn_io import DirectWriter, allow_nagle, corked, on_disconnect

if TYPE_CHECKING:
    from gateway.subscription import Subscription

__all__ = ["RAW_SEND", "OverCapacity", "StreamResponse", "StreamSlots", "stream_slot"]

log = logging.getLogger("gateway.streams")

Header = tuple[bytes, bytes]

# Scope key under which the app (gateway.app) keeps the server's own ``send``.
RAW_SEND = "gateway.raw_send"


class OverCapacity(BrokerUnavailable):
    code = "over_capacity"


class StreamSlots:
    """Counts open streams; :meth:`acquire` is synchronous, so no two requests race past the cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> Callable[[], None]:
        """Take a slot or raise OverCapacity; returns the (idempotent) release function."""
        if self.in_use >= self.limit:
            raise OverCapacity(
                f"this gateway holds its maximum of {self.limit} streams; retry shortly", 1
            )
        self.in_use += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_use -= 1

        return release


class StreamResponse(Response):
    """An endless response written from ``body`` (ready-made bytes) in the request's own task.

    Headers go out through the whole middleware stack (CORS, request id, error handling all see
    the response start); body chunks go straight to the server's ``send`` (:data:`RAW_SEND`).
    ``subscription.abort`` ends the stream from outside - on disconnect, or from the hub's write
    watchdog - by cancelling this task; that cancellation is ours, so it is taken back here.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        subscription: Subscription,
        *,
        media_type: str,
        headers: Mapping[str, str],
        channels: int = 1,
        nagle: bool = False,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(_raw_headers(media_type, tuple(headers.items())))
        self.body_iterator = body
        self.subscription = subscription
        self.on_close: list[Callable[[], None]] = []
        self._channels = channels
        self._nagle = nagle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        metrics.STREAMS_OPENED.inc()
        subscription = self.subscription
        reason = "error"  # unless it ends below; a cancellation not ours re-raises
        try:
            if scope["method"] == "HEAD":  # headers only: an endless body would never complete
                await self._start(send)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await self._stream(scope, receive, send)
            reason = "client"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not subscription.aborted or task is None or task.uncancel() > 0:
                raise
        finally:
            subscription.task = None  # no abort may land in the code that runs after us
            reason = subscription.close_reason or reason  # ours (slow, shutdown, ...) first
            await _close(self.body_iterator)
            for callback in self.on_close:
                callback()
            metrics.stream_closed(reason)
            elapsed = round(time.monotonic() - started, 3)
            log.info(
                "stream closed",
                extra={"reason": reason, "seconds": elapsed, "channels": self._channels},
            )

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send: Send = scope.get(RAW_SEND, send)
        subscription = self.subscription
        subscription.task = asyncio.current_task()
        watcher = None
        if not on_disconnect(raw_send, functools.partial(subscription.abort, "client")):
            watcher = asyncio.create_task(_watch_disconnect(receive, subscription))
        body = self.body_iterator
        loop = asyncio.get_running_loop()
        try:
            with corked(raw_send):  # the head and the stream's first bytes in one write
                await self._start(send)
                first = await anext(body, None)  # the preamble: ready without waiting
                if first is not None:
                    await raw_send({"type": "http.response.body", "body": first, "more_body": True})
            if self._nagle:
                allow_nagle(raw_send)
            subscription.direct = DirectWriter.for_send(
                raw_send, functools.partial(subscription.abort, "error")
            )
            async for chunk in body:
                subscription.writing_since = loop.time()
                await raw_send({"type": "http.response.body", "body": chunk, "more_body": True})
                subscription.writing_since = 0.0
            await raw_send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            subscription.task = None
            subscription.direct = None
            if watcher is not None:
                watcher.cancel()

    async def _start(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})


@functools.cache
def _raw_headers(media_type: str, headers: tuple[tuple[str, str], ...]) -> tuple[Header, ...]:
    """Starlette's encoding of a response's headers, done once per kind of stream: every stream
    then shares the same byte strings instead of holding its own (~0.5 KiB each)."""
    encoded = Response(media_type=media_type, headers=dict(headers)).raw_headers
    return tuple(header for header in encoded if header[0] != b"content-length")  # endless body


async def _watch_disconnect(receive: Receive, subscription: Subscription) -> None:
    """Under a server other than uvicorn (:func:`gateway.uvicorn_io.on_disconnect`), a task per
    stream: ``send`` returns quietly once the peer is gone, so only ``receive`` tells us (the
    heartbeat would write into the void for ever)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    subscription.abort("client")


async def _close(body: AsyncIterator[bytes]) -> None:
    """Run the body generator's ``finally`` (leave the hub, cancel timers) however we ended:
    after a cancelled write it is still suspended at its ``yield``."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


async def stream_slot(request: Request) -> AsyncIterator[None]:
    """Route dependency: hold one of ``max_connections`` slots until the stream has ended.

    FastAPI runs the code after ``yield`` once the response is finished - for a stream, when it
    closes, however it closes - so the slot is held exactly as long as the connection streams.
    """
    slots: StreamSlots = request.state.slots
    try:
        release = slots.acquire()
    except OverCapacity:
        metrics.OVER_CAPACITY.inc()
        raise
    try:
        yield
    finally:
        release()
