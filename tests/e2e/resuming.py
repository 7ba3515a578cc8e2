"""A reconnecting SSE subscriber and a paced publisher, for the cluster tests.

``ResumingSubscriber`` behaves like a browser's EventSource on top of the byte-level reader in
:mod:`tests.support.sse`: when a stream ends or breaks it waits the last ``retry:`` it was told,
reconnects through the proxy and sends the last id it saw as ``Last-Event-ID``. Unlike a browser it
also keeps what a test needs: every id it received per channel, which replica served each
connection, and any non-200 answer (a browser would have given up for good on one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.support.sse import SSEConnection, SSEEvent, sse_connect

GAP_EVENT = "gateway.gap"

Entry = tuple[str, str]  # (stream id, data)


class ResumingSubscriber:
    def __init__(self, http: httpx.AsyncClient, base_url: str, channels: tuple[str, ...]) -> None:
        self.http = http
        self.channels = channels
        if len(channels) == 1:
            self.url = f"{base_url}/subscribe/{channels[0]}"
        else:
            self.url = f"{base_url}/subscribe?" + "&".join(f"channel={c}" for c in channels)
        self.received: dict[str, list[Entry]] = {channel: [] for channel in channels}
        self.upstreams: list[str] = []  # the replica behind each connection (nginx X-Upstream)
        self.refusals: list[int] = []
        self.errors: list[str] = []
        self.gaps: list[str] = []
        self.last_event_id: str | None = None
        self.retry_ms = 3000  # the browser default until the server says otherwise
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Forever, like a browser tab; the test cancels it."""
        while True:
            await self._connect_once()
            await asyncio.sleep(self.retry_ms / 1000)

    async def _connect_once(self) -> None:
        try:
            async with sse_connect(
                self.url, last_event_id=self.last_event_id, client=self.http
            ) as conn:
                if conn.response.status_code != 200:
                    self.refusals.append(conn.response.status_code)
                    return
                self.upstreams.append(conn.response.headers.get("x-upstream", "?"))
                await self._read(conn)
        except httpx.HTTPError as exc:  # a browser retries network errors after retry: too
            self.errors.append(repr(exc))

    async def _read(self, conn: SSEConnection) -> None:
        while True:
            frame = await conn.next_frame(timeout=3600)
            if conn.last_event_id:  # as of the frame just returned; kept across connections
                self.last_event_id = conn.last_event_id
            if conn.parser.retry is not None:
                self.retry_ms = conn.parser.retry
            if frame is None:
                return
            self.connected.set()
            if frame.data is not None:
                self._record(frame)

    def _record(self, frame: SSEEvent) -> None:
        assert frame.data is not None
        if frame.event == GAP_EVENT:
            self.gaps.append(frame.data)
            return
        if len(self.channels) == 1:
            channel, entry_id = self.channels[0], frame.last_event_id
        else:  # vector id: the event's own channel comes first
            channel, _, entry_id = frame.last_event_id.split(",", 1)[0].partition("=")
        self.received[channel].append((entry_id, frame.data))

    def has_all(self, truth: dict[str, list[Entry]]) -> bool:
        return all(
            {entry_id for entry_id, _ in truth[channel]}
            <= {entry_id for entry_id, _ in self.received[channel]}
            for channel in self.channels
        )


@dataclass
class Tally:
    """What one subscriber got on one channel, held against the channel's whole history."""

    expected: int
    received: int
    duplicated: int
    missing: int
    exact: bool  # every message once, in order, with the right data

    @classmethod
    def of(cls, received: list[Entry], truth: list[Entry]) -> Tally:
        ids = [entry_id for entry_id, _ in received]
        truth_ids = {entry_id for entry_id, _ in truth}
        return cls(
            expected=len(truth),
            received=len(received),
            duplicated=len(ids) - len(set(ids)),
            missing=len(truth_ids - set(ids)),
            exact=received == truth,
        )


async def wait_until(check: Callable[[], bool], timeout: float) -> None:
    """Poll until ``check()`` holds or ``timeout`` passes; the caller asserts afterwards (with
    the evidence). Polling, because the state is filled in by many tasks and subprocesses."""
    try:
        async with asyncio.timeout(timeout):
            while not check():  # noqa: ASYNC110 - no single event to wait on
                await asyncio.sleep(0.05)
    except TimeoutError:
        pass


@dataclass
class PacedPublisher:
    """Publishes ``{"seq": n, "i": k}`` messages on one channel through the proxy, one request
    after another: a single JSON message, or an NDJSON batch of ``batch`` messages (one atomic
    publish, so a busy test spends its CPU on delivery rather than on HTTP requests)."""

    http: httpx.AsyncClient
    base_url: str
    channel: str
    batch: int = 1
    acked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    attempted: int = 0  # messages, acknowledged or not

    async def publish(self, seq: int) -> None:
        url = f"{self.base_url}/publish/{self.channel}"
        self.attempted += self.batch
        try:
            if self.batch == 1:
                response = await self.http.post(url, json={"seq": seq})
            else:
                lines = "".join(f'{{"seq":{seq},"i":{k}}}\n' for k in range(self.batch))
                headers = {"content-type": "application/x-ndjson"}
                response = await self.http.post(url, content=lines, headers=headers)
        except httpx.HTTPError as exc:
            self.failures.append(repr(exc))
            return
        if response.status_code != 202:
            self.failures.append(f"{response.status_code} {response.text[:200]}")
        elif self.batch == 1:
            self.acked.append(response.json()["id"])
        else:
            self.acked.extend(response.json()["ids"])

    async def run(self, stop: asyncio.Event, *, at_least: int, interval: float) -> None:
        """Keep publishing until told to stop and at least ``at_least`` messages were sent."""
        seq = 0
        while self.attempted < at_least or not stop.is_set():
            seq += 1
            await self.publish(seq)
            await asyncio.sleep(interval)
