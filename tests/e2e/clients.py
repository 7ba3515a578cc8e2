"""The real EventSource clients under test, behind one small interface.

* :class:`NodeClient` runs one of the scripts in ``js/`` (headless Chromium through
  playwright-core, or the npm ``eventsource`` package) and reads its JSON lines: every ``open``,
  ``message`` and ``error`` the EventSource reported, plus, where the client lets us see it, what
  it sent on each (re)connection.
* :class:`HttpxSseClient` uses ``httpx-sse``. That library parses streams but does not reconnect,
  so it is driven the way its README suggests: reconnect after the stream ends, waiting the last
  ``retry:`` and sending the last id as ``Last-Event-ID``.

Both fill one :class:`StreamLog` per stream; the tests hold those to the channels' history.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import httpx_sse

from tests.support.node_script import stop_script

E2E_DIR = Path(__file__).resolve().parent
JS_DIR = E2E_DIR / "js"
CLOSED = 2  # EventSource.readyState after a fatal error: the client will not reconnect

Entry = tuple[str, str]  # (stream id, data)


@dataclass
class StreamLog:
    name: str
    url: str
    channels: tuple[str, ...]
    credentials: bool = True  # send the cookie (withCredentials), where the test sets one
    opens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    sent_ids: list[str | None] = field(default_factory=list)  # Last-Event-ID per connection
    statuses: list[int] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    received: dict[str, list[Entry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.received = {channel: [] for channel in self.channels}

    def message(self, event: str, last_event_id: str, data: str) -> None:
        if event == "gateway.gap":
            self.gaps.append(data)
            return
        if len(self.channels) == 1:
            channel, entry_id = self.channels[0], last_event_id
        else:  # vector id: the event's own channel comes first
            channel, _, entry_id = last_event_id.split(",", 1)[0].partition("=")
        self.received[channel].append((entry_id, data))

    def has_all(self, truth: dict[str, list[Entry]]) -> bool:
        return all(
            {entry_id for entry_id, _ in truth[channel]}
            <= {entry_id for entry_id, _ in self.received[channel]}
            for channel in self.channels
        )

    @property
    def failed(self) -> bool:
        """The client gave up for good, as a browser does on a non-200 answer."""
        return any(error.get("readyState") == CLOSED for error in self.errors)


def stream_url(base_url: str, channels: tuple[str, ...]) -> str:
    if len(channels) == 1:
        return f"{base_url}/subscribe/{channels[0]}"
    return f"{base_url}/subscribe?" + "&".join(f"channel={channel}" for channel in channels)


class Client(Protocol):
    streams: dict[str, StreamLog]

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def transcript(self) -> str: ...


class NodeClient:
    """``node js/<script> <config>``: prints JSON lines until its stdin is closed."""

    def __init__(self, script: str, streams: list[StreamLog], **config: Any) -> None:
        self.script = JS_DIR / script
        self.streams = {stream.name: stream for stream in streams}
        self.config = {
            "streams": [
                {"name": s.name, "url": s.url, "withCredentials": s.credentials} for s in streams
            ],
            **config,
        }
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node", str(self.script), json.dumps(self.config), cwd=E2E_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        async with asyncio.timeout(60):
            await self._ready.wait()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a stray diagnostic line; kept in the transcript
            self._route(record)
        self._ready.set()  # the script died before it was ready: start() returns, checks fail

    def _route(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "ready":
            self._ready.set()
        elif kind == "request":  # chromium: the request the browser itself sent
            for stream in self.streams.values():
                if record["url"] == stream.url:
                    stream.sent_ids.append(record["lastEventId"])
        elif record.get("stream") in self.streams:
            stream = self.streams[record["stream"]]
            if kind == "open":
                stream.opens += 1
            elif kind == "error":
                stream.errors.append(record)
            elif kind == "response":  # node eventsource: what it sent, what it got
                stream.statuses.append(record["status"])
                stream.sent_ids.append(record["lastEventId"])
            elif kind == "message":
                stream.message(record["event"], record["lastEventId"], record["data"])

    def transcript(self) -> str:
        return "\n".join(self.lines[-60:])

    async def close(self) -> None:
        await stop_script(self.proc, self._reader)


class HttpxSseClient:
    """httpx-sse, with the reconnect loop its users write (the library does not reconnect)."""

    def __init__(
        self,
        streams: list[StreamLog],
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``headers`` (e.g. a Cookie) go only with streams whose ``credentials`` is set."""
        self.streams = {stream.name: stream for stream in streams}
        self.headers = headers or {}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        self.log: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow(s)) for s in self.streams.values()]

    async def _follow(self, stream: StreamLog) -> None:
        last_id: str | None = None
        retry_ms = 3000
        while True:
            headers = dict(self.headers) if stream.credentials else {}
            if last_id:
                headers["Last-Event-ID"] = last_id
            stream.sent_ids.append(last_id)
            try:
                async with httpx_sse.aconnect_sse(
                    self.http, "GET", stream.url, headers=headers
                ) as source:
                    stream.statuses.append(source.response.status_code)
                    if source.response.status_code != 200:
                        # Same rule as a browser: a non-200 answer is final.
                        stream.errors.append({"readyState": CLOSED})
                        return
                    stream.opens += 1
                    async for sse in source.aiter_sse():
                        last_id = sse.id or last_id
                        retry_ms = sse.retry if sse.retry is not None else retry_ms
                        if sse.data:
                            stream.message(sse.event or "message", sse.id, sse.data)
            except (httpx.HTTPError, httpx_sse.SSEError) as exc:
                self.log.append(f"{stream.name}: {exc!r}")
                stream.errors.append({"readyState": 0, "error": repr(exc)})
            await asyncio.sleep(retry_ms / 1000)

    def transcript(self) -> str:
        return "\n".join(self.log[-60:])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()
