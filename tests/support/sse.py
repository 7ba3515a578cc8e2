"""A byte-level SSE reader that follows the WHATWG parsing rules, over a real HTTP connection.

It keeps what a browser keeps (``last_event_id``, ``retry``) and also records what a browser
hides (comments, id-only frames), so tests can assert exactly what went over the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSEEvent:
    id: str | None  # the id field of this frame, if any
    last_event_id: str  # what EventSource.lastEventId would be after this frame
    event: str  # "message" when no event field was sent
    data: str | None  # None for frames without data (not dispatched by browsers)

    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)

    @property
    def channel(self) -> str | None:
        """On a multi-channel stream, the channel this event came from."""
        return self.last_event_id.split("=", 1)[0] if "=" in self.last_event_id else None


@dataclass
class SSEParser:
    last_event_id: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    _buffer: bytes = b""
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None
    _has_data: bool = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, ending = _split_line(self._buffer)
            if ending is None:
                return events
            self._buffer = self._buffer[len(line) + len(ending) :]
            event = self._line(line.decode("utf-8"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        frame_id, self._id = self._id, None
        if not self._has_data and frame_id is None:
            self._event = ""
            return None
        data = "\n".join(self._data) if self._has_data else None
        event = SSEEvent(frame_id, self.last_event_id, self._event or "message", data)
        self._data, self._event, self._has_data = [], "", False
        return event


def _split_line(buffer: bytes) -> tuple[bytes, bytes | None]:
    for index, byte in enumerate(buffer):
        if byte == 0x0A:
            return buffer[:index], b"\n"
        if byte == 0x0D:
            if index + 1 == len(buffer):
                return buffer, None  # maybe CRLF; wait for the next byte
            ending = b"\r\n" if buffer[index + 1] == 0x0A else b"\r"
            return buffer[:index], ending
    return buffer, None


class FrameReader:
    """What every test reader offers on top of its own ``next_frame``."""

    async def next_frame(self, timeout: float = 10.0) -> SSEEvent | None:
        raise NotImplementedError

    async def next_event(self, timeout: float = 10.0) -> SSEEvent | None:
        """The next frame that carries data (what a browser would dispatch)."""
        while True:
            frame = await self.next_frame(timeout)
            if frame is None or frame.data is not None:
                return frame

    async def collect(self, count: int, timeout: float = 30.0) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        async with asyncio.timeout(timeout):
            while len(events) < count:
                event = await self.next_event(timeout)
                if event is None:
                    break
                events.append(event)
        return events


class SSEConnection(FrameReader):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SSEParser()
        self._pending: list[SSEEvent] = []
        self._chunks = response.aiter_raw()
        self.closed = False
        self._last_event_id = ""

    @property
    def last_event_id(self) -> str:
        """The lastEventId after the last frame *returned* (the parser may have read further)."""
        return self._last_event_id

    async def next_frame(self, timeout: float = 10.0) -> SSEEvent | None:
        """The next frame with an id or data; None when the server ended the stream."""
        async with asyncio.timeout(timeout):
            while not self._pending:
                try:
                    chunk = await anext(self._chunks)
                except (StopAsyncIteration, httpx.RemoteProtocolError, httpx.ReadError):
                    self.closed = True
                    return None
                self._pending.extend(self.parser.feed(chunk))
            frame = self._pending.pop(0)
            self._last_event_id = frame.last_event_id
            return frame


@asynccontextmanager
async def sse_connect(
    url: str,
    *,
    last_event_id: str | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[SSEConnection]:
    all_headers = {"accept": "text/event-stream", **(headers or {})}
    if last_event_id is not None:
        all_headers["last-event-id"] = last_event_id
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    try:
        async with http.stream("GET", url, headers=all_headers) as response:
            yield SSEConnection(response)
    finally:
        if own:
            await http.aclose()
