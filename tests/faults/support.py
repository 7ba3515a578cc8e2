"""Helpers for the fault tests: metrics scraping, process memory, and a raw-socket SSE client
(no HTTP library in between, so a test controls exactly when - and whether - bytes are read)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.sse import FrameReader, SSEConnection, SSEEvent, SSEParser, sse_connect

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def scrape(base_url: str) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}``."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match[1]] = float(match[2])
    return out


async def ascrape(base_url: str) -> dict[str, float]:
    return await asyncio.to_thread(scrape, base_url)


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(interval)
    return False


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def request_bytes(path: str, headers: dict[str, str] | None = None, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class ChunkedBody:
    """Incremental HTTP/1.1 chunked decoding that tolerates a body cut anywhere."""

    buffer: bytes = b""
    finished: bool = False  # the terminating zero-length chunk arrived: a clean end

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        while not self.finished:
            head, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                break
            size = int(head.split(b";")[0] or b"0", 16)
            if size == 0:
                self.finished = True
                break
            if len(rest) < size + 2:
                break
            out += rest[:size]
            self.buffer = rest[size + 2 :]
        return bytes(out)


@dataclass
class RawStream:
    """One SSE stream over a bare socket: status, headers, parsed events, and how it ended."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    parser: SSEParser = field(default_factory=SSEParser)
    events: list[SSEEvent] = field(default_factory=list)
    body: ChunkedBody = field(default_factory=ChunkedBody)
    raw: bytes = b""  # the decoded body as received
    ended_at: float | None = None

    def feed_head(self, head: bytes) -> None:
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def feed_body(self, data: bytes) -> None:
        decoded = self.body.feed(data) if self.chunked else data
        self.raw += decoded
        self.events.extend(self.parser.feed(decoded))

    @property
    def chunked(self) -> bool:
        return self.headers.get("transfer-encoding", "").lower() == "chunked"


async def open_raw(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, RawStream]:
    """Connect, send the request, read the status and headers (not the body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(path, headers))
    await writer.drain()
    stream = RawStream()
    head = await reader.readuntil(b"\r\n\r\n")
    stream.feed_head(head[:-4])
    return reader, writer, stream


async def read_until(
    reader: asyncio.StreamReader, stream: RawStream, done: Callable[[RawStream], bool]
) -> None:
    while not done(stream):
        data = await reader.read(65536)
        if not data:
            stream.ended_at = time.monotonic()
            return
        stream.feed_body(data)


async def read_to_end(reader: asyncio.StreamReader, stream: RawStream) -> None:
    """Read until the server closes the connection (or the chunked body ends)."""
    await read_until(reader, stream, lambda s: s.body.finished)
    if stream.ended_at is None:
        stream.ended_at = time.monotonic()


def stalled_socket(port: int, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A client that sends its request and then never reads: a tiny receive window, so the
    gateway's writes back up quickly (the kernel still acknowledges what it buffered)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request_bytes(path))
    return sock


def drain_socket(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the stalled client can still read, until the connection ends or goes quiet."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
            sock.settimeout(1.0)  # once flowing, a quiet second means nothing more is coming
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def parse_raw_response(data: bytes) -> RawStream:
    stream = RawStream()
    head, _, body = data.partition(b"\r\n\r\n")
    stream.feed_head(head)
    stream.feed_body(body)
    return stream


def established_to(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the gateway's side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                count += 1
    return count


class Reader(FrameReader):
    """Reads an :class:`SSEConnection` in a background task, so a test can watch keepalive
    comments arrive over time without ever cancelling a read (which would end the stream)."""

    def __init__(self, conn: SSEConnection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[SSEEvent] = asyncio.Queue()
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for chunk in self.conn.response.aiter_raw():
                for event in self.conn.parser.feed(chunk):
                    self.queue.put_nowait(event)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            pass
        finally:
            self.ended.set()

    @property
    def comments(self) -> list[str]:
        return self.conn.parser.comments

    async def next_frame(self, timeout: float = 10.0) -> SSEEvent | None:
        """The next frame with an id or data; None once the stream has ended."""
        async with asyncio.timeout(timeout):
            get = asyncio.ensure_future(self.queue.get())
            ended = asyncio.ensure_future(self.ended.wait())
            try:
                await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
            if get.done():
                return get.result()
            get.cancel()
            return self.queue.get_nowait() if not self.queue.empty() else None

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@asynccontextmanager
async def sse_reader(url: str, **kwargs: Any) -> AsyncIterator[Reader]:
    async with sse_connect(url, **kwargs) as conn:
        reader = Reader(conn)
        try:
            yield reader
        finally:
            await reader.aclose()


_FRAME = re.compile(rb"id: (\S+)\ndata: \{\"seq\":(\d+)")


async def fast_collect(port: int, path: str, count: int, timeout: float = 60.0) -> list[int]:
    """Read ``count`` ``{"seq": n, ...}`` events as fast as a native client would: no per-byte
    Python parsing (the frames are matched with one regex at the end), so the *test* never is
    the slow consumer."""
    reader, writer, stream = await open_raw(port, path)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while body.count(b"\ndata: ") < count:
                data = await reader.read(1 << 20)
                if not data:
                    break
                body += stream.body.feed(data) if stream.chunked else data
    finally:
        writer.close()
    return [int(seq) for _, seq in _FRAME.findall(bytes(body))]
