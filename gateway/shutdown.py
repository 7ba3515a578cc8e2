"""SIGTERM -> drain first, then let uvicorn stop: readiness flips and streams end while we still
listen, so a request that arrives meanwhile gets a clear 503 instead of a refused connection.

Why not rely on uvicorn + sse-starlette alone: on SIGTERM uvicorn closes its listening socket at
once and sse-starlette cancels every stream; and in ``--workers N`` mode sse-starlette's
``AppStatus`` hook is installed after uvicorn captured the signals, so it never fires at all. So
in each process's lifespan we wrap the handler uvicorn installed:

1. first SIGTERM/SIGINT: ``hub.drain(drain_window)`` - ``/readyz`` answers 503, new streams get
   503 + Retry-After, open streams are ended at random moments over the window, each with a short
   jittered ``retry:``;
2. once every stream has ended (at the latest ``drain_window`` + 0.5 s later) we hand the signal to
   uvicorn's own handler, which closes the listener and waits for whatever is still running for
   at most ``graceful_timeout - drain_window - 0.5`` (the CLI sets that as uvicorn's graceful
   timeout, at least 1 s), so the process is gone within ``graceful_timeout``;
3. a second signal during the drain goes straight to uvicorn (a second Ctrl-C forces the exit).

Budget: drain_window < graceful_timeout < terminationGracePeriodSeconds - preStop sleep.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from gateway.hub import Hub

__all__ = ["DRAIN_MARGIN", "DrainOnSignal"]

log = logging.getLogger("gateway.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DRAIN_MARGIN = 0.5  # seconds after the window for the last farewells to be written
Handler = Callable[[int, FrameType | None], Any]


class DrainOnSignal:
    def __init__(self, hub: Hub, drain_window: float) -> None:
        self._hub = hub
        self._window = drain_window
        self._previous: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.requested = False

    def install(self) -> bool:
        """Wrap the server's handlers; False (nothing done) off the main thread, e.g. in tests."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._previous[sig] = previous
                signal.signal(sig, self._on_signal)
        return bool(self._previous)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # A Python signal handler runs on the main thread between two bytecodes: only schedule.
        if self.requested:
            self._hand_over(sig)
            return
        self.requested = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start, sig)

    def _start(self, sig: int) -> None:
        log.info(
            "shutdown requested: draining streams",
            extra={"signal": signal.Signals(sig).name, "streams": len(self._hub.subscriptions),
                   "drain_window": self._window},
        )  # fmt: skip
        self._hub.drain(self._window)
        self._task = asyncio.create_task(self._finish(sig), name="drain")

    async def _finish(self, sig: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._window + DRAIN_MARGIN
        # Polled: streams end in their own tasks, and nothing else needs telling when the last one
        # goes, so an Event kept up to date by every stream would cost more than this loop.
        while self._hub.subscriptions and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        log.info("drain finished", extra={"streams_left": len(self._hub.subscriptions)})
        self._hand_over(sig)

    def _hand_over(self, sig: int) -> None:
        previous = self._previous.get(sig) or self._previous.get(signal.SIGTERM)
        if previous is not None:
            previous(sig, None)

    async def close(self) -> None:
        """Put the wrapped handlers back (an app run in-process, e.g. by a test, must not leave
        its SIGINT handler behind) and stop a drain still waiting."""
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
