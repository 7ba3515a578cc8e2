"""The publishing side of the load tool, run in its own process.

Transports (``mode``):

* ``redis-raw``: ``PUBLISH channel json`` on a raw RESP connection, pipelined per batch.
* ``lua``: the gateway's atomic publish script through ``publisher.AsyncPublisher`` (history +
  announcement, what a real producer does).
* ``http``: one ``POST {pub_path}`` per message with a JSON body, on ``concurrency`` keep-alive
  connections with up to ``pipeline`` requests in flight on each (pipelined, answered in order).
* ``ndjson``: ``POST`` batches as ``application/x-ndjson``, one message per line.

Pacing: with ``rate`` > 0 messages are due at ``rate`` per second (open loop; a late sender
catches up). With ``rate`` == 0 it publishes as fast as the server delivers: it keeps at most
``window`` messages published but not yet delivered to every subscriber, read from the shared
progress counters, so the load saturates the server without piling an unbounded backlog into it.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tests.perf.message import make
from tests.perf.util import raise_nofile, use_uvloop


@dataclass
class PubPlan:
    mode: str
    host: str
    port: int
    redis_url: str
    pub_path: str
    channels: list[str]
    max_messages: int
    duration: float
    rate: float = 0.0
    window: int = 0
    fanout: float = 1.0  # subscribers per channel, to turn delivered events into messages
    concurrency: int = 4  # connections (HTTP) or sender loops (Redis)
    pipeline: int = 1  # HTTP requests in flight on one connection
    batch: int = 1
    size: int = 256


class Sender:
    async def open(self) -> None: ...

    async def send(self, channel: str, payloads: list[bytes]) -> None: ...

    async def close(self) -> None: ...


class RedisRaw(Sender):
    def __init__(self, plan: PubPlan) -> None:
        self.host, self.port = plan.redis_url.split("//")[1].split("/")[0].split(":")

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, int(self.port))

    async def send(self, channel: str, payloads: list[bytes]) -> None:
        ch = channel.encode()
        self.writer.write(
            b"".join(
                b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(ch), ch, len(p), p)
                for p in payloads
            )
        )
        for _ in payloads:
            line = await self.reader.readline()
            if not line.startswith(b":"):
                raise RuntimeError(f"PUBLISH failed: {line!r}")

    async def close(self) -> None:
        self.writer.close()


class Lua(Sender):
    shared: Any = None

    def __init__(self, plan: PubPlan) -> None:
        self.url = plan.redis_url

    async def open(self) -> None:
        if Lua.shared is None:
            from publisher import AsyncPublisher  # only the gateway needs it

            Lua.shared = AsyncPublisher(self.url)

    async def send(self, channel: str, payloads: list[bytes]) -> None:
        await Lua.shared.publish_encoded(channel, [("", p) for p in payloads])

    async def close(self) -> None:
        pass  # shared by every sender loop: closed once by close_shared(), after all are done

    @classmethod
    async def close_shared(cls) -> None:
        if cls.shared is not None:
            shared, cls.shared = cls.shared, None
            await shared.aclose()


class HttpLink:
    """One keep-alive connection that ``pipeline`` sender loops share.

    Each request is written as soon as its loop has it, without waiting for the answers before
    it (HTTP/1.1 pipelining); the server answers in order, so one reader task settles the
    waiting futures first in, first out. With one loop per link this is plain keep-alive.
    """

    def __init__(self, plan: PubPlan) -> None:
        self.plan = plan
        self.writer: asyncio.StreamWriter | None = None
        self.waiting: deque[asyncio.Future[tuple[bytes, bytes]]] = deque()
        self.opening = asyncio.Lock()
        self.reader_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        async with self.opening:  # every loop of a broken link calls this; one reconnects
            if self.writer is None:
                reader, self.writer = await asyncio.open_connection(self.plan.host, self.plan.port)
                self.reader_task = asyncio.create_task(self._answers(reader, self.writer))

    def request(self, raw: bytes) -> asyncio.Future[tuple[bytes, bytes]]:
        if self.writer is None:
            raise ConnectionError("publishing connection is closed")
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        self.writer.write(raw)
        return answer

    async def _answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        error: BaseException = ConnectionError("publishing connection closed by the server")
        try:
            while True:
                status, body, close = await _response(reader)
                self.waiting.popleft().set_result((status, body))
                if close:  # the server ends keep-alive (nginx after keepalive_requests)
                    break
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = exc
        finally:
            self._broken(writer, error)

    def _broken(self, writer: asyncio.StreamWriter, error: BaseException) -> None:
        writer.close()
        if self.writer is writer:
            self.writer = None
        while self.waiting:  # asked on this connection, never answered: the loops count them
            self.waiting.popleft().set_exception(error)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.reader_task is not None:
            self.reader_task.cancel()


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bool]:
    """``(status, body, connection close)`` of the next response on ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)[1]
    size, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            size = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    return status, await _body(reader, size, chunked), close


async def _body(reader: asyncio.StreamReader, size: int, chunked: bool) -> bytes:
    if not chunked:
        return await reader.readexactly(size) if size else b""
    out = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        out.append(await reader.readexactly(size + 2))
        if size == 0:
            return b"".join(out)


class Http(Sender):
    def __init__(self, plan: PubPlan, link: HttpLink) -> None:
        self.plan = plan
        self.link = link
        self.ndjson = plan.mode == "ndjson"

    async def open(self) -> None:
        await self.link.open()

    async def send(self, channel: str, payloads: list[bytes]) -> None:
        if self.ndjson:
            body, ctype = b"\n".join(payloads) + b"\n", b"application/x-ndjson"
        else:
            assert len(payloads) == 1
            body, ctype = payloads[0], b"application/json"
        path = self.plan.pub_path.format(ch=channel).encode()
        status, answer = await self.link.request(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path, self.plan.host.encode(), self.plan.port, ctype, len(body), body)
        )
        if not status.startswith(b"2"):
            raise RuntimeError(f"HTTP {status.decode()}: {answer[:200]!r}")

    async def close(self) -> None:
        pass  # the link is shared by `pipeline` loops: _run closes it once they are all done


SENDERS: dict[str, Callable[[PubPlan], Sender]] = {"redis-raw": RedisRaw, "lua": Lua}
HTTP_MODES = ("http", "ndjson")


class Pacer:
    """Hands out the next batch when it is due (rate) or when the window allows (closed loop)."""

    def __init__(self, plan: PubPlan, progress: Any) -> None:
        self.plan = plan
        self.progress = progress
        self.next = 0  # global message number
        self.published = [0] * len(plan.channels)
        self.errors = 0
        self.error_sample = ""
        self.t0 = time.monotonic()
        self.deadline = self.t0 + plan.duration
        # One loop at a time waits for the next slot, the others queue behind it (FIFO): with
        # 32 pipelined loops, each polling on its own woke the publisher 32 times per message.
        self.turn = asyncio.Lock()

    def exhausted(self) -> bool:
        return self.next >= self.plan.max_messages or time.monotonic() >= self.deadline

    def delivered_messages(self) -> float:
        return sum(self.progress) / self.plan.fanout

    async def take(self) -> tuple[int, int] | None:
        """``(first global number, count)`` of the next batch, all on one channel."""
        plan = self.plan
        async with self.turn:
            return await self._next(plan)

    async def _next(self, plan: PubPlan) -> tuple[int, int] | None:
        while not self.exhausted():
            if plan.rate:
                due = self.t0 + self.next / plan.rate
                delay = due - time.monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                    continue
            elif self.next - self.delivered_messages() >= plan.window:
                await asyncio.sleep(0.0005)
                continue
            count = min(plan.batch, plan.max_messages - self.next)
            first = self.next
            self.next += count
            return first, count
        return None


async def _sender_loop(plan: PubPlan, pacer: Pacer, sender: Sender) -> None:
    await sender.open()
    nch = len(plan.channels)
    try:
        while (got := await pacer.take()) is not None:
            first, count = got
            # Batches target one channel: message k goes to channel (k // batch) % nch and has
            # that channel's sequence number, so every channel's numbers run 0, 1, 2, ...
            index = (first // plan.batch) % nch
            seq0 = (first // (plan.batch * nch)) * plan.batch
            channel = plan.channels[index]
            payloads = [make(seq0 + i, channel, plan.size) for i in range(count)]
            try:
                await sender.send(channel, payloads)
            except Exception as exc:  # counted and sampled; the run goes on
                pacer.errors += count
                pacer.error_sample = pacer.error_sample or repr(exc)[:300]
                if isinstance(exc, OSError | asyncio.IncompleteReadError):
                    await sender.close()
                    await sender.open()
                continue
            pacer.published[index] += count
    finally:
        await sender.close()


async def _run(plan: PubPlan, progress: Any) -> dict[str, Any]:
    pacer = Pacer(plan, progress)
    links = [HttpLink(plan) for _ in range(plan.concurrency)] if plan.mode in HTTP_MODES else []
    if links:  # `pipeline` loops per connection, each with one request in flight
        senders: list[Sender] = [
            Http(plan, links[i % len(links)]) for i in range(plan.concurrency * plan.pipeline)
        ]
    else:
        senders = [SENDERS[plan.mode](plan) for _ in range(plan.concurrency)]
    t0 = time.monotonic_ns()
    try:
        await asyncio.gather(*(_sender_loop(plan, pacer, sender) for sender in senders))
    finally:
        await Lua.close_shared()
        for link in links:
            await link.close()
    t1 = time.monotonic_ns()
    return {
        "published": pacer.published,
        "attempted": pacer.next,
        "errors": pacer.errors,
        "error_sample": pacer.error_sample,
        "seconds": (t1 - t0) / 1e9,
    }


def publisher_main(plan: PubPlan, progress: Any, pipe: Connection) -> None:
    raise_nofile()
    use_uvloop()
    try:
        pipe.send(asyncio.run(_run(plan, progress)))
    except Exception as exc:  # reported, not raised: the main process decides
        pipe.send({"published": [0] * len(plan.channels), "errors": -1, "error_sample": repr(exc)})
    finally:
        pipe.close()


def start_publisher(plan: PubPlan, progress: Any) -> tuple[Any, Connection]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=publisher_main, args=(plan, progress, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent
