from __future__ import annotations

import asyncio

from gateway.events import Event, durable_event, raw_event
from gateway.subscription import Gap, Subscription


def _event(channel: str, ms: int, data: bytes = b"{}") -> Event:
    event = durable_event(channel, f"{ms}-0", (ms, 0), "", data)
    assert event is not None
    return event


def _sub(channels=("a",), positions=None, **limits) -> Subscription:
    positions = positions or dict.fromkeys(channels, "0-0")
    limits = {"max_messages": 100, "max_bytes": 1 << 20, **limits}
    return Subscription(channels, positions, **limits)


def test_single_channel_frames_are_shared_bytes() -> None:
    sub = _sub()
    event = _event("a", 5, b'{"x":1}')
    assert sub.render([event]) == b'id: 5-0\ndata: {"x":1}\n\n'
    assert sub.ids["a"] == "5-0"


def test_events_at_or_below_the_cursor_are_skipped() -> None:
    sub = _sub(positions={"a": "5-0"})
    out = sub.render([_event("a", 4), _event("a", 5), _event("a", 6), _event("a", 6)])
    assert out == b"id: 6-0\ndata: {}\n\n"


def test_multi_channel_ids_carry_every_position() -> None:
    sub = _sub(("a", "b"))
    out = sub.render([_event("b", 7), _event("a", 3)])
    assert out == b"id: b=7-0,a=0-0\ndata: {}\n\nid: a=3-0,b=7-0\ndata: {}\n\n"
    assert sub.position == "a=3-0,b=7-0"


def test_raw_events_keep_the_current_position() -> None:
    sub = _sub(positions={"a": "9-0"})
    raw = raw_event("a", "8-0", b'{"r": 1}')
    assert raw is not None
    assert sub.render([raw]) == b'id: 9-0\ndata: {"r":1}\n\n'


def test_gap_resets_the_position_and_says_why() -> None:
    sub = _sub(positions={"a": "9-0"})
    out = sub.render([Gap("a", "truncated", "3-0"), _event("a", 4)])
    assert out.startswith(b"id: 3-0\nevent: gateway.gap\ndata: ")
    assert b'"reason":"truncated"' in out and out.endswith(b"id: 4-0\ndata: {}\n\n")


def test_overflow_closes_the_subscription_as_slow_and_frees_the_buffer() -> None:
    sub = _sub(max_messages=3)
    for ms in range(1, 5):
        sub.push(_event("a", ms))
    assert sub.close_reason == "slow"
    assert not sub._queue
    sub.push(_event("a", 9))  # ignored once closed
    assert not sub._queue


def test_byte_limit_also_counts() -> None:
    sub = _sub(max_bytes=2048)
    sub.push(_event("a", 1, b'"' + b"x" * 3000 + b'"'))
    assert sub.close_reason == "slow"


async def test_waiting_events_are_coalesced_into_one_chunk() -> None:
    sub = _sub()
    for ms in range(1, 4):
        sub.push(_event("a", ms))
    chunks = sub.chunks()
    chunk = await anext(chunks)
    assert chunk.count(b"data:") == 3
    sub.close("shutdown")
    assert [c async for c in chunks] == []


async def test_a_push_wakes_the_waiting_reader() -> None:
    sub = _sub()
    reader = asyncio.ensure_future(anext(sub.chunks()))
    await asyncio.sleep(0)
    assert not reader.done()
    sub.push(_event("a", 1))
    assert (await asyncio.wait_for(reader, 1)) == b"id: 1-0\ndata: {}\n\n"


class _Sink:
    """Stands in for the stream's connection (gateway.stream.ConnectionSink)."""

    def __init__(self) -> None:
        self.open = True
        self.written: list[bytes] = []
        self.drains = self.closes = self.aborts = 0

    def writable(self) -> bool:
        return self.open

    def write(self, chunk: bytes) -> None:
        self.written.append(chunk)

    def drained(self) -> None:
        self.drains += 1

    def leave_direct(self) -> None:
        pass

    def closed(self) -> None:
        self.closes += 1

    def abort(self) -> None:
        self.aborts += 1


async def test_a_sink_gets_one_write_per_batch_after_the_batch():
    sub = _sub(positions={"a": "5-0"})
    sink = sub.sink = _Sink()
    for ms in (4, 6, 7):  # one batch, as a Redis read's messages are fanned out
        sub.push(_event("a", ms))
    assert sink.written == []
    await asyncio.sleep(0)  # the batch's flush
    assert sink.written == [b"id: 6-0\ndata: {}\n\nid: 7-0\ndata: {}\n\n"]  # cursor applied
    assert sink.drains == 1
    sub.close("shutdown")
    assert sink.closes == 1


async def test_a_sink_that_would_wait_keeps_the_items_until_it_resumes():
    sub = _sub()
    sink = sub.sink = _Sink()
    sink.open = False
    sub.push(_event("a", 1))
    sub.push(_event("a", 2))
    await asyncio.sleep(0)
    assert sink.written == []
    sink.open = True
    sub.flush()  # what the sink calls on resume_writing
    assert sink.written == [b"id: 1-0\ndata: {}\n\nid: 2-0\ndata: {}\n\n"]


def test_abort_on_a_sink_drops_the_connection_once():
    sub = _sub()
    sink = sub.sink = _Sink()
    sub.abort("send_timeout")
    sub.abort("send_timeout")
    assert (sub.close_reason, sink.closes, sink.aborts) == ("send_timeout", 1, 1)
