"""Subscriber side of the load tool: a lean byte-level HTTP/1.1 + SSE client for worker processes.

Why not httpx or aiohttp: at several hundred thousand events per second on a 2-core machine the
client competes with the server for CPU, so each connection is a bare ``asyncio.Protocol`` whose
``data_received`` decodes chunked transfer encoding and SSE frames with ``bytes`` methods only.
One clock read per socket read stamps every event that arrived in it.

Messages are the JSON objects built by :func:`tests.perf.message.make`; each carries its channel
sequence number and the publisher's ``CLOCK_MONOTONIC`` timestamp (system-wide on Linux), so
latency is ``receive - send`` across processes. Per connection a bitmap of sequence numbers
tells deliveries from duplicates; the main process turns the distinct counts into losses.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.perf.stats import Histogram

HEADERS, BODY, CLOSED = 0, 1, 2
_SEQ_PREFIX = b'{"seq":'
_TS_MARK = b',"ts":'
# A frame that is one optional "id:" line and one "data:" line holding a benchmark message.
_FAST = re.compile(rb'(?:id: ?([^\n]*)\n)?data: ?\{"seq":(\d+),"ts":(\d+),[^\n]*\Z')


@dataclass
class WorkerStats:
    """Everything one worker process counts; merged by the main process."""

    events: int = 0
    duplicates: int = 0
    comments: int = 0
    bad_frames: int = 0
    unexpected_close: int = 0
    http_errors: int = 0
    connect_errors: int = 0
    error_sample: str = ""
    latency: Histogram = field(default_factory=Histogram)


class SseParser:
    """Incremental SSE decoder (WHATWG rules: CRLF/CR/LF line ends, ``:`` comments, fields).

    ``feed`` returns complete events as ``(event, id, data)``; ``data`` is ``None`` for a frame
    that carried no ``data:`` line (retry/id-only frames), which the spec does not dispatch.
    """

    __slots__ = ("buf", "comments", "cr_tail", "last_id", "retry")

    def __init__(self) -> None:
        self.buf = b""
        self.cr_tail = False
        self.comments = 0
        self.retry: int | None = None
        self.last_id: bytes | None = None

    def feed(self, payload: bytes) -> list[tuple[bytes, bytes | None, bytes]]:
        out = []
        for block in self.blocks(payload):
            event = self.parse_block(block)
            if event is not None:
                out.append(event)
        return out

    def blocks(self, payload: bytes) -> list[bytes]:
        """Complete frames (text between blank lines), line ends normalised to ``\\n``."""
        if self.cr_tail:
            payload = b"\r" + payload
            self.cr_tail = False
        if b"\r" in payload:
            if payload.endswith(b"\r"):
                payload, self.cr_tail = payload[:-1], True
            payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self.buf + payload if self.buf else payload
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.buf = buf
            return []
        self.buf = buf[end + 2 :]
        return buf[:end].split(b"\n\n")

    def parse_block(self, block: bytes) -> tuple[bytes, bytes | None, bytes] | None:
        if block.startswith(b"data: ") and b"\n" not in block:  # the common frame, fast
            return b"message", self.last_id, block[6:]
        data: bytes | None = None
        event = b"message"
        for line in block.split(b"\n"):
            if not line:
                continue
            if line[0] == 58:  # ":" comment (keepalive)
                self.comments += 1
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data = value if data is None else data + b"\n" + value
            elif name == b"id" and b"\0" not in value:
                self.last_id = value
            elif name == b"event":
                event = value
            elif name == b"retry" and value.isdigit():
                self.retry = int(value)
        return None if data is None else (event, self.last_id, data)


class ChunkDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder."""

    __slots__ = ("buf", "eof", "left", "need_crlf")

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0
        self.need_crlf = False
        self.eof = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        out = []
        i, n = 0, len(buf)
        while i < n and not self.eof:
            if self.left:
                take = min(self.left, n - i)
                out.append(buf[i : i + take])
                i += take
                self.left -= take
                self.need_crlf = self.left == 0
            elif self.need_crlf:
                if n - i < 2:
                    break
                i += 2
                self.need_crlf = False
            else:
                j = buf.find(b"\r\n", i)
                if j < 0:
                    break
                size = int(buf[i:j].split(b";")[0], 16)
                i = j + 2
                self.eof = size == 0
                self.left = size
        self.buf = buf[i:]
        return out[0] if len(out) == 1 else b"".join(out)


def parse_message(data: bytes) -> tuple[int, int]:
    """``(seq, ts_ns)`` of a benchmark message; byte slicing first, JSON only as a fallback."""
    if data.startswith(_SEQ_PREFIX):
        comma = data.find(b",", 7)
        ts_at = comma + len(_TS_MARK)
        if data.startswith(_TS_MARK, comma):
            end = data.find(b",", ts_at)
            return int(data[7:comma]), int(data[ts_at:end])
    obj = json.loads(data)
    return int(obj["seq"]), int(obj["ts"])


class Subscriber(asyncio.Protocol):
    """One SSE connection: request, response head, chunked body, SSE frames, bookkeeping."""

    def __init__(self, worker: Any, host: str, path: str, channel: int) -> None:
        self.worker = worker
        self.channel = channel
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        self.state = HEADERS
        self.head = b""
        self.chunks: ChunkDecoder | None = None
        self.sse = SseParser()
        self.seen = bytearray(256)
        self.distinct = 0
        self.t_headers = 0
        self.t_first_byte = 0
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.dropped = False  # the server ended the stream before we did
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.state == HEADERS:
            data = self._head(data, now)
            if not data:
                return
        if self.chunks is not None:
            data = self.chunks.feed(data)
        if data:
            if not self.t_first_byte:
                self.t_first_byte = now
                self.worker.first_byte(self)
            self._events(data, now)

    def _head(self, data: bytes, now: int) -> bytes:
        head = self.head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return b""
        self.head, rest = b"", head[end + 4 :]
        lines = head[:end].split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"200":
            self.worker.fail(self, "http", lines[0].decode("latin-1"))
            self.close()
            return b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunks = ChunkDecoder()
        self.state = BODY
        self.t_headers = now
        self.worker.headers(self)
        return rest

    def _events(self, data: bytes, now: int) -> None:
        stats = self.worker.stats
        seen = self.seen
        sample = self.worker.sample_mask
        fast = _FAST.match
        for block in self.sse.blocks(data):
            match = fast(block)
            if match is not None:  # one optional id line and one benchmark data line
                seq, ts = int(match[2]), int(match[3])
                if match[1] is not None:
                    self.sse.last_id = match[1]
            else:
                got = self._slow(block)
                if got is None:
                    continue
                seq, ts = got
            stats.events += 1
            if seq >= len(seen):
                seen.extend(bytes(max(seq + 1, 2 * len(seen)) - len(seen)))
            if seen[seq]:
                stats.duplicates += 1
                continue
            seen[seq] = 1
            self.distinct += 1
            if not seq & sample:
                stats.latency.add((now - ts) // 1000)

    def _slow(self, block: bytes) -> tuple[int, int] | None:
        event = self.sse.parse_block(block)
        if event is None:
            return None
        try:
            return parse_message(event[2])
        except (ValueError, KeyError, TypeError):
            self.worker.stats.bad_frames += 1
            return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.dropped = True
            self.worker.fail(self, "close", repr(exc) if exc else "server closed the stream")
        self.state = CLOSED
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()
