"""Every place the gateway reaches past ASGI into uvicorn's connection objects, in one module.

ASGI gives a response one ``send`` per message and tells of a vanished client only through a
pending ``receive``. That costs, per stream, a task waiting on ``receive`` for its whole life, and
per response, one socket write for the head and another for the first bytes of the body. uvicorn's
``send`` is a bound method of its ``RequestResponseCycle``, which holds the connection's transport,
its flow control and the event it sets when the peer goes away; these helpers use them:

* :class:`DirectWriter`: a body chunk written from outside the stream's task (the hub's fan-out),
  without a task wake-up per subscriber per message;
* :func:`corked`: the head and the first body bytes leave in one write (one syscall, one segment
  and one wake-up of the client instead of two);
* :func:`on_disconnect`: a callback when the peer goes away, instead of a task per stream;
* :func:`allow_nagle`: Nagle back on for a stream's connection (``GATEWAY_TCP_NODELAY=false``).

Each checks that the attributes it needs are there and otherwise does nothing (or reports that it
cannot help, so the caller takes the plain ASGI way). The integration tests run every one of them
in real uvicorn processes; uvicorn is pinned below 0.60 in pyproject.toml until a newer one has
passed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, cast

from starlette.types import Message, Send

__all__ = ["DirectWriter", "allow_nagle", "corked", "on_disconnect"]

log = logging.getLogger("gateway.streams")


def _cycle(send: Send) -> Any:
    """uvicorn's ``RequestResponseCycle`` behind a bound ``send``, or None."""
    return getattr(send, "__self__", None)


class DirectWriter:
    """Writes a chunk from outside the stream's task (``Subscription._flush``), without a wake-up.

    uvicorn's ``send`` for a body chunk only ever waits when the transport asked it to stop writing
    (``flow.write_paused``); checked first, it completes synchronously, so it is driven here with
    one ``coro.send(None)``. Under any other server there is no such guarantee and no writer: the
    task writes everything.
    """

    __slots__ = ("_flow", "_on_error", "_send")

    def __init__(self, flow: Any, send: Send, on_error: Callable[[], None]) -> None:
        self._flow, self._send, self._on_error = flow, send, on_error

    @classmethod
    def for_send(cls, send: Send, on_error: Callable[[], None]) -> DirectWriter | None:
        flow = getattr(_cycle(send), "flow", None)
        if flow is None or not isinstance(getattr(flow, "write_paused", None), bool):
            return None
        return cls(flow, send, on_error)

    def writable(self) -> bool:
        return not self._flow.write_paused

    def write(self, chunk: bytes) -> None:
        message: Message = {"type": "http.response.body", "body": chunk, "more_body": True}
        coro = cast(Coroutine[Any, Any, None], self._send(message))
        try:
            coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("direct write failed")
        else:  # it would have waited: never when writable() said so; end the stream cleanly
            coro.close()
        self._on_error()


class _Cork:
    """Stands in for a cycle's transport: collects writes until :meth:`pop_out` sends them."""

    __slots__ = ("_parts", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def close(self) -> None:  # uvicorn closes after a response without keep-alive: bytes first
        self.pop_out()
        self.transport.close()

    def pop_out(self) -> None:
        if self._parts:
            self.transport.write(b"".join(self._parts))
            self._parts.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class corked:
    """Whatever uvicorn writes for this response inside the block goes out in one write at its end.

    uvicorn writes the head as soon as it gets ``http.response.start``, and each body message on
    its own; its own code still builds every byte (headers checked, chunked framing, keep-alive).
    A class, not a generator-based context manager: it runs once per publish and per stream open.
    """

    __slots__ = ("_cork", "_cycle")

    def __init__(self, send: Send) -> None:
        self._cycle = _cycle(send)
        transport = getattr(self._cycle, "transport", None)
        usable = transport is not None and callable(getattr(transport, "write", None))
        self._cork = _Cork(transport) if usable else None

    def __enter__(self) -> None:
        if self._cork is not None:
            self._cycle.transport = self._cork

    def __exit__(self, *exc_info: object) -> None:
        cork = self._cork
        if cork is not None:
            self._cycle.transport = cork.transport
            cork.pop_out()


class _DisconnectEvent(asyncio.Event):
    """uvicorn sets its cycle's ``message_event`` for every request-body message and once more,
    with ``disconnected`` true, when the peer goes away; this one also calls back then."""

    def __init__(self, cycle: Any, callback: Callable[[], None]) -> None:
        super().__init__()
        self._cycle = cycle
        self._callback: Callable[[], None] | None = callback

    def set(self) -> None:
        super().set()
        callback = self._callback
        if callback is not None and self._cycle.disconnected:
            self._callback = None
            callback()


def on_disconnect(send: Send, callback: Callable[[], None]) -> bool:
    """Call ``callback`` once when the client goes away; False when this server offers no way
    (then only a pending ``receive`` tells)."""
    cycle = _cycle(send)
    event = getattr(cycle, "message_event", None)
    if not isinstance(event, asyncio.Event) or not isinstance(
        getattr(cycle, "disconnected", None), bool
    ):
        return False
    hook = _DisconnectEvent(cycle, callback)
    if event.is_set():
        hook.set()  # calls back at once when the client is already gone
    cycle.message_event = hook
    return True


def allow_nagle(send: Send) -> None:
    """Turn Nagle back on for this connection (asyncio and uvloop set TCP_NODELAY on every one).
    Under another server there is no transport to reach and the setting does nothing."""
    transport = getattr(_cycle(send), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
