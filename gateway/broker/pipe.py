"""One script over one dedicated Redis connection, pipelined, without redis-py's per-call costs.

Why: a single-message HTTP publish spent ~140 µs of its ~200 µs of CPU in redis-py running one
``EVALSHA`` (pool checkout, timeout scopes, every argument through its encoder, one awaited read
per reply; docs/performance.md). Here a call is a packed command and a future: every call queued
in one event-loop iteration goes out in one write, and one reader task settles the replies in
order, as many per socket read as have arrived. No delay is added: the flush runs on the very
next iteration, and a lone call goes out on its own.

The connection is a :class:`~gateway.broker.connection.RedisConnection` (TCP, TLS or unix socket,
AUTH and SELECT; Sentinel's look-up of the master), which the pipe writes and reads in bulk.

Failure semantics (the HTTP publish answers 503 for each):

* Redis unreachable: the call fails at once; the next call tries a new connection.
* A call not answered within ``timeout`` (a hung or partitioned Redis): the connection is dropped
  with everything in flight on it, so a publish's worst case stays about one ``timeout``.
* The connection lost with calls in flight: they fail and are *not* sent again. Redis may have run
  them; the client decides whether to retry (at most once from here).
* ``NOSCRIPT`` (Redis restarted or flushed its scripts): that call is sent again as ``EVAL``.
  Redis did not run it, so this is not a retry.
* ``READONLY`` (a Sentinel failover turned our node into a replica): the call fails and the
  connection is dropped, so the next one asks Sentinel for the new master.
* ``MOVED``/``ASK``/``TRYAGAIN``/``CLUSTERDOWN`` (a cluster slot moved or is moving): the call
  fails with :class:`Redirected` (naming the node, for ``ASK``); Redis did not run it, so the
  caller may send it elsewhere: ``asking=True`` sends it preceded by ``ASKING``, as an ``ASK``
  redirection requires.

``min_replicas`` (GATEWAY_PUBLISH_MIN_REPLICAS): each flush is followed by one
``WAIT min_replicas wait_ms`` on the same connection, which covers every write before it; the
flush's calls are answered only when it returns, and fail with BackendUnavailable when fewer
replicas acknowledged them. ``wait_ms`` is 40% of ``timeout``: a call queued behind one WAIT
still gets its own inside ``timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis

from gateway.broker.connection import RedisConnection, pack_args, pack_command
from publisher.errors import BackendUnavailable, PublishError

__all__ = ["Redirected", "ScriptPipe"]

log = logging.getLogger("gateway.broker")

REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
CONNECT_TIMEOUT = 2.0
_NOTHING: Any = object()


class Redirected(BackendUnavailable):
    """A cluster node refused the call for a slot it does not serve (yet): Redis did not run it.

    ``ask``: for ``ASK <slot> <host>:<port>`` (the slot is migrating and the key has left), the
    node to send this one call to, preceded by ``ASKING``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"redis redirected the publish: {message}")
        self.ask: tuple[str, int] | None = None
        words = message.split()
        if len(words) == 3 and words[0] == "ASK":
            host, _, port = words[2].rpartition(":")
            self.ask = (host.strip("[]"), int(port))


ASKING = pack_command("ASKING")


class _Asking:
    """The ``ASKING`` sent before one redirected call: its ``+OK`` is consumed, not answered."""

    __slots__ = ("sent_at",)

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at

    def settle(self, _: Any) -> None:
        return None  # nobody waits for it; its call is failed on its own


def _heads(script: bytes) -> tuple[bytes, bytes]:
    sha = hashlib.sha1(script, usedforsecurity=False).hexdigest()
    return pack_args("EVALSHA", sha), pack_args("EVAL", script)


class _Call:
    __slots__ = ("as_eval", "asking", "future", "held", "nargs", "packed", "script", "sent_at")

    def __init__(
        self,
        nargs: int,
        packed: bytes,
        future: asyncio.Future[Any],
        script: int = 0,
        asking: bool = False,
    ) -> None:
        self.script = script  # which of the pipe's scripts
        self.asking = asking  # preceded by ASKING (an ASK redirection)
        self.nargs = nargs  # numkeys, keys and args: everything after the script or its sha
        self.packed = packed
        self.future = future
        self.sent_at = 0.0
        self.as_eval = False
        self.held: Any = _NOTHING  # the script's reply, until its flush's WAIT answers

    def settle(self, result: Any) -> None:
        if self.future.done():  # its caller went away meanwhile
            return
        if isinstance(result, Exception):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


class _Wait:
    """The WAIT sent after one flush: answers that flush's calls once replicas hold them."""

    __slots__ = ("calls", "needed", "sent_at")

    def __init__(self, calls: list[_Call], needed: int, sent_at: float) -> None:
        self.calls, self.needed, self.sent_at = calls, needed, sent_at

    def settle(self, acked: Any) -> None:
        for call in self.calls:
            if call.held is _NOTHING:
                continue  # failed on its own, or sent again (NOSCRIPT) with a WAIT of its own
            if isinstance(acked, Exception):
                call.settle(acked)
            elif isinstance(acked, int) and acked >= self.needed:
                call.settle(call.held)
            else:
                call.settle(BackendUnavailable(f"{acked} of {self.needed} replicas acknowledged"))


class _Link:
    """One live connection and the task reading its replies."""

    __slots__ = ("conn", "task")

    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        self.task: asyncio.Task[None] | None = None


class ScriptPipe:
    """``await pipe.call(nargs, packed)`` runs ``script`` (EVALSHA, EVAL when Redis lacks it).

    ``connect`` returns an open :class:`RedisConnection`.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[RedisConnection]],
        *scripts: str,
        timeout: float,
        min_replicas: int = 0,
    ) -> None:
        self._connect = connect
        # Per script (a call names its index): the EVALSHA head, and EVAL's for NOSCRIPT.
        self._heads = [_heads(script.encode()) for script in scripts]
        self._timeout = timeout
        self._min_replicas = min_replicas
        wait_ms = max(1, int(timeout * 400))
        self._wait_command = b"*3\r\n" + pack_args("WAIT", min_replicas, wait_ms)
        self._queued: list[_Call] = []
        self._inflight: deque[_Call | _Wait | _Asking] = deque()
        self._flush_scheduled = False
        self._link: _Link | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._stall: asyncio.TimerHandle | None = None

    async def call(self, nargs: int, packed: bytes, script: int = 0, asking: bool = False) -> Any:
        """The reply of the pipe's ``script`` (index) for ``packed`` = :func:`pack_args` of
        numkeys, the keys and the args (``nargs`` of them in all). Raises BackendUnavailable
        (transport) or PublishError (refused)."""
        future = asyncio.get_running_loop().create_future()
        call = _Call(nargs, packed, future, script, asking)
        self._enqueue(call)
        return await call.future

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._link is not None:
            self._drop(self._link, "the gateway is shutting down", quiet=True)
        queued, self._queued = self._queued, []
        for call in queued:
            call.settle(BackendUnavailable("the gateway is shutting down"))

    # -- writing -------------------------------------------------------------------------------

    def _enqueue(self, call: _Call) -> None:
        self._queued.append(call)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued or self._connecting is not None:
            return  # the connect's end flushes
        link = self._link
        if link is not None and not link.conn.usable():
            self._drop(link, "redis closed the connection")
            link = None
        if link is None:
            self._connecting = asyncio.create_task(self._open(), name="publish-pipe-connect")
            return
        calls, self._queued = self._queued, []
        loop = asyncio.get_running_loop()
        now = loop.time()
        parts: list[bytes] = []
        for call in calls:
            if call.asking:  # ASKING holds for the one command after it: written together
                parts.append(ASKING)
                self._inflight.append(_Asking(now))
            head = self._heads[call.script][call.as_eval]
            parts += (b"*%d\r\n" % (call.nargs + 2), head, call.packed)
            call.sent_at = now
            self._inflight.append(call)
        if self._min_replicas:
            parts.append(self._wait_command)
        link.conn.write(b"".join(parts))
        if self._min_replicas:
            self._inflight.append(_Wait(calls, self._min_replicas, now))
        if self._stall is None:
            self._stall = loop.call_at(now + self._timeout, self._check_stall)

    async def _open(self) -> None:
        try:
            # Bounded within the call timeout: a Redis that accepts and never answers the
            # handshake must not hold the publishes queued behind the connect any longer.
            async with asyncio.timeout(min(self._timeout, CONNECT_TIMEOUT)):
                conn = await self._connect()
        except Exception as exc:
            queued, self._queued = self._queued, []
            for call in queued:
                call.settle(BackendUnavailable(f"redis unreachable: {exc or type(exc).__name__}"))
            return
        finally:
            self._connecting = None
        link = _Link(conn)
        link.task = asyncio.create_task(self._read(link), name="publish-pipe-reader")
        self._link = link
        self._flush()

    # -- reading -------------------------------------------------------------------------------

    async def _read(self, link: _Link) -> None:
        try:
            async for replies in link.conn.replies():
                for reply in replies:
                    self._settle(reply)
        except Exception as exc:
            self._drop(link, f"redis connection lost: {exc or type(exc).__name__}")

    def _settle(self, reply: Any) -> None:
        if not self._inflight:
            raise ConnectionError("redis sent a reply nobody asked for")
        call = self._inflight.popleft()
        if isinstance(call, _Asking):
            return  # +OK; were it refused, the call after it is refused too, and says why
        if isinstance(call, _Wait):
            failed = isinstance(reply, hiredis.ReplyError)
            call.settle(BackendUnavailable(f"WAIT refused: {reply}") if failed else reply)
            return
        if not isinstance(reply, hiredis.ReplyError):
            if self._min_replicas:
                call.held = reply
            else:
                call.settle(reply)
            return
        message = str(reply)
        if message.startswith("NOSCRIPT") and not call.as_eval:
            call.as_eval = True
            self._enqueue(call)
            return
        if message.startswith(REDIRECTS):
            call.settle(Redirected(message))
            return
        call.settle(PublishError(f"redis refused the publish: {message}"))
        if message.startswith("READONLY"):
            raise ConnectionError("redis is a read-only replica now (failover)")

    def _check_stall(self) -> None:
        self._stall = None
        if not self._inflight or self._link is None:
            return
        loop = asyncio.get_running_loop()
        due = self._inflight[0].sent_at + self._timeout
        if loop.time() >= due:
            self._drop(self._link, f"redis did not answer within {self._timeout:g}s")
        else:
            self._stall = loop.call_at(due, self._check_stall)

    def _drop(self, link: _Link, reason: str, *, quiet: bool = False) -> None:
        """Close ``link`` and fail everything in flight on it."""
        if self._link is not link:
            return
        self._link = None
        if not quiet:
            log.warning("publish connection dropped: %s", reason)
        link.conn.abort()  # a hung peer would never take the buffered bytes
        if link.task is not None and link.task is not asyncio.current_task():
            link.task.cancel()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        inflight, self._inflight = self._inflight, deque()
        for call in inflight:
            call.settle(BackendUnavailable(reason))
