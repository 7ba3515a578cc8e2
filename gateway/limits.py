"""Load limits: a cap on open streams per process, and the stream response that honours it.

    BrokerUnavailable (gateway.errors)
    └── OverCapacity       this process holds ``max_connections`` streams: 503 + Retry-After

Why 503 and not 429 for the connection cap: the client did nothing wrong and is not over a
personal quota; this replica is full and another one (or this one, shortly) can serve it. 429 is
kept for nothing: a stream asking for more channels than ``max_channels_per_stream`` is a 400
(retrying the same request can never succeed).

:class:`StreamResponse` is sse-starlette's ``EventSourceResponse`` with three additions:

* its close callbacks (leave the hub) run however the response ends - normally, cancelled, on a
  write error, or before its body iterator ever started (the iterator's own ``finally`` does not
  run then, which would leave the subscription registered in the hub for ever);
* a write blocked longer than ``send_timeout`` (a stalled or vanished client) ends the stream
  quietly and is counted, instead of surfacing as an "Exception in ASGI application" traceback;
* one structured log line and the close-reason counters when the stream ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.errors import BrokerUnavailable

__all__ = ["OverCapacity", "StreamResponse", "StreamSlots", "stream_slot"]

log = logging.getLogger("gateway.streams")


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


class StreamResponse(EventSourceResponse):
    def __init__(self, *args: Any, channels: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_close: list[Callable[[], None]] = []
        self.close_reason: Callable[[], str | None] = lambda: None
        self._channels = channels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        metrics.STREAMS_OPENED.inc()
        reason = "error"  # unless it returns or times out below (a cancellation re-raises)
        try:
            await super().__call__(scope, receive, send)
            reason = "client"
        except SendTimeoutError:
            reason = "send_timeout"
        finally:
            reason = self.close_reason() or reason  # ours (slow, shutdown, ...) comes first
            for callback in self.on_close:
                callback()
            metrics.stream_closed(reason)
            elapsed = round(time.monotonic() - started, 3)
            log.info(
                "stream closed",
                extra={"reason": reason, "seconds": elapsed, "channels": self._channels},
            )


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
