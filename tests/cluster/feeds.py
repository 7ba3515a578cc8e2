"""What the failover tests watch: streams read in the background, publishers that keep going.

A :class:`Feed` records every event and gap one SSE stream delivers; a :class:`Producer` POSTs
numbered messages to one channel until told to stop and records what was acknowledged (202),
refused (503) and anything else (which must never happen: a 500 is a bug). Together they answer
the questions a failover test asks: was every acknowledged message delivered exactly once, and
is every one that was not covered by a ``gateway.gap``?
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from tests.support.sse import sse_connect

GAP = "gateway.gap"


@dataclass
class Feed:
    events: list[tuple[str, str]] = field(default_factory=list)  # (channel, id)
    gaps: list[dict[str, str]] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    last_event_id: str = ""

    def ids(self, channel: str) -> list[str]:
        return [i for c, i in self.events if c == channel]

    def duplicates(self) -> list[tuple[str, str]]:
        return [key for key, n in Counter(self.events).items() if n > 1]

    def gaps_on(self, channel: str) -> int:
        return sum(1 for gap in self.gaps if gap["channel"] == channel)


@contextlib.asynccontextmanager
async def reading(
    url: str, channels: list[str], last_event_id: str | None = None
) -> AsyncIterator[Feed]:
    """Read ``url``'s stream of ``channels`` into a Feed until the block ends."""
    feed = Feed()
    query = "&".join(f"channel={c}" for c in channels)

    async def run() -> None:
        async with sse_connect(f"{url}/subscribe?{query}", last_event_id=last_event_id) as stream:
            assert stream.response.status_code == 200, stream.response.status_code
            feed.opened.set()
            while (frame := await stream.next_frame(timeout=60)) is not None:
                feed.last_event_id = frame.last_event_id
                if frame.event == GAP:
                    feed.gaps.append(frame.json())
                elif frame.data is not None and frame.id:
                    feed.events.append(_own_id(frame.id, channels))

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(feed.opened.wait(), 10)
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _own_id(frame_id: str, channels: list[str]) -> tuple[str, str]:
    """A one-channel stream's ids are plain; a multi-channel one's start with ``channel=id``."""
    if len(channels) == 1:
        return channels[0], frame_id
    channel, _, entry_id = frame_id.split(",")[0].partition("=")
    return channel, entry_id


@dataclass
class Producer:
    url: str
    channel: str
    acked: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    stopping: bool = False

    async def run(self, pause: float = 0.01) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            n = 0
            while not self.stopping:
                n += 1
                try:
                    reply = await http.post(f"{self.url}/publish/{self.channel}", json={"n": n})
                except httpx.HTTPError:
                    self.statuses[0] += 1
                    continue
                self.statuses[reply.status_code] += 1
                if reply.status_code == 202:
                    self.acked.append(reply.json()["id"])
                else:
                    assert reply.status_code == 503, reply.text
                    assert "retry-after" in reply.headers
                await asyncio.sleep(pause)

    def unexpected(self) -> dict[int, int]:
        return {code: n for code, n in self.statuses.items() if code not in (202, 503)}


@contextlib.asynccontextmanager
async def producing(url: str, channel: str) -> AsyncIterator[Producer]:
    producer = Producer(url, channel)
    task = asyncio.create_task(producer.run())
    try:
        yield producer
    finally:
        producer.stopping = True
        await asyncio.wait_for(task, 20)


async def eventually(check: object, timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
