"""Load limits: a cap on open streams per process, and the slot each stream holds.

    BrokerUnavailable (gateway.errors)
    └── OverCapacity       this process holds ``max_connections`` streams: 503 + Retry-After

Why 503 and not 429 for the connection cap: the client did nothing wrong and is not over a
personal quota; this replica is full and another one (or this one, shortly) can serve it. 429 is
kept for nothing: a stream asking for more channels than ``max_channels_per_stream`` is a 400
(retrying the same request can never succeed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from gateway import metrics
from gateway.errors import BrokerUnavailable

__all__ = ["OverCapacity", "StreamSlots", "stream_slot", "take_slot"]


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


def take_slot(slots: StreamSlots) -> Callable[[], None]:
    """A stream slot (counted when refused); the release function. Raises OverCapacity."""
    try:
        return slots.acquire()
    except OverCapacity:
        metrics.OVER_CAPACITY.inc()
        raise


async def stream_slot(request: Request) -> AsyncIterator[None]:
    """Route dependency: hold one of ``max_connections`` slots until the stream has ended.

    FastAPI runs the code after ``yield`` once the response is finished - for a stream, when it
    closes, however it closes - so the slot is held exactly as long as the connection streams.
    """
    release = take_slot(request.state.slots)
    try:
        yield
    finally:
        release()
