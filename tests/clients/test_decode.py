"""The subscriber's sans-IO decoders and the gateway's NDJSON encoding, without a network:
chunks cut at every byte, every line ending, every line kind."""

from __future__ import annotations

import pytest

from gateway.events import durable_event
from gateway.ndjson import NDJSON, wants_ndjson
from gateway.subscription import Gap as GatewayGap
from gateway.subscription import Subscription
from publisher.decode import Gap, Message, NdjsonDecoder, SseDecoder, Step
from publisher.errors import StreamProtocolError
from publisher.subscriber import _Session

SSE_STREAM = (
    b"\xef\xbb\xbfretry: 250\nid: 5-0\n\n"
    b": keepalive\n\n"
    b'id: 6-0\nevent: tick\ndata: {"n":\n'
    b"data: 1}\n\n"
    b'id: 7-0\nevent: gateway.gap\ndata: {"channel":"a","reason":"truncated","resumed_at":"7-0"}'
    b"\n\n"
)
EXPECTED = [
    Step(None, "5-0"),
    Step(Message("6-0", "a", "tick", {"n": 1}), "6-0"),
    Step(Gap("7-0", "a", "truncated", "7-0"), "7-0"),
]


def _feed_bytewise(decoder: SseDecoder | NdjsonDecoder, stream: bytes) -> list[Step]:
    steps: list[Step] = []
    for index in range(len(stream)):
        steps.extend(decoder.feed(stream[index : index + 1]))
    return steps


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_sse_decoder_handles_every_line_ending_in_any_chunking(ending: bytes) -> None:
    stream = SSE_STREAM.replace(b"\n", ending)
    whole = SseDecoder(("a",))
    assert whole.feed(stream) == EXPECTED
    bytewise = SseDecoder(("a",))
    assert _feed_bytewise(bytewise, stream) == EXPECTED
    assert bytewise.retry_ms == 250


def test_sse_decoder_names_the_channel_from_a_vector_id() -> None:
    decoder = SseDecoder(("a", "b"))
    (step,) = decoder.feed(b'id: b=9-0,a=3-0\ndata: {"x":true}\n\n')
    assert step.item == Message("b=9-0,a=3-0", "b", "message", {"x": True})


def test_sse_decoder_rejects_data_that_is_not_json() -> None:
    with pytest.raises(StreamProtocolError):
        SseDecoder(("a",)).feed(b"id: 1-0\ndata: <html>\n\n")


def test_ndjson_decoder_reads_every_kind_across_chunks() -> None:
    stream = (
        b'{"type":"open","id":"5-0","retry":300}\n'
        b'{"type":"keepalive"}\n\n'
        b'{"type":"message","id":"6-0","channel":"a","event":"message","data":[1]}\n'
        b'{"type":"future-kind","x":1}\n'
        b'{"type":"gap","id":"7-0","channel":"a","reason":"unknown","resumed_at":"7-0"}\n'
        b'{"type":"close","reason":"shutdown","retry":900}\n'
        b'{"type":"message","id":"8-0"'  # cut off: never decoded
    )
    decoder = NdjsonDecoder(("a",))
    assert _feed_bytewise(decoder, stream) == [
        Step(None, "5-0"),
        Step(Message("6-0", "a", "message", [1]), "6-0"),
        Step(Gap("7-0", "a", "unknown", "7-0"), "7-0"),
    ]
    assert decoder.retry_ms == 900


@pytest.mark.parametrize("line", [b"not json\n", b"[1]\n", b'{"type":"message","id":"1-0"}\n'])
def test_ndjson_decoder_rejects_unreadable_lines(line: bytes) -> None:
    with pytest.raises(StreamProtocolError):
        NdjsonDecoder(("a",)).feed(line)


def test_gateway_ndjson_lines_round_trip_through_the_decoder() -> None:
    event = durable_event("a", "6-0", (6, 0), "tick", b'{"s":"line\\nbreak"}')
    assert event is not None
    single = Subscription(("a",), {"a": "5-0"}, max_messages=10, max_bytes=1 << 20, renderer=NDJSON)
    multi = Subscription(
        ("a", "b"), {"a": "5-0", "b": "1-0"}, max_messages=10, max_bytes=1 << 20, renderer=NDJSON
    )
    one = single.render([event, GatewayGap("a", "truncated", "9-0")])
    assert event.ndjson is not None and one.startswith(event.ndjson)  # cached once per message
    both = multi.render([event])
    assert NdjsonDecoder(("a",)).feed(one) == [
        Step(Message("6-0", "a", "tick", {"s": "line\nbreak"}), "6-0"),
        Step(Gap("9-0", "a", "truncated", "9-0"), "9-0"),
    ]
    (step,) = NdjsonDecoder(("a", "b")).feed(both)
    assert step == Step(Message("a=6-0,b=1-0", "a", "tick", {"s": "line\nbreak"}), "a=6-0,b=1-0")


@pytest.mark.parametrize(
    ("accept", "ndjson"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/event-stream", False),
        ("application/x-ndjson", True),
        ("Application/X-NDJSON; charset=utf-8", True),
        ("application/x-ndjson;q=0", False),
        ("application/x-ndjson;q=0.5, text/event-stream", False),
        ("text/event-stream;q=0.2, application/x-ndjson", True),
        ("application/x-ndjson;q=abc", False),
    ],
)
def test_content_negotiation(accept: str | None, ndjson: bool) -> None:
    assert wants_ndjson(accept) is ndjson


def _session(urls: list[str], **overrides: object) -> _Session:
    options: dict = {
        "last_event_id": None,
        "token": "t0k",
        "format": "sse",
        "retry_initial": 1.0,
        "retry_max": 8.0,
        "max_retries": None,
        "headers": None,
        **overrides,
    }
    return _Session(urls, ("a", "b"), **options)


def test_session_backs_off_with_jitter_rotates_urls_and_honours_the_hint() -> None:
    session = _session(["http://one", "http://two/"])
    assert session.url() == "http://one/subscribe?channel=a&channel=b"
    assert session.headers()["authorization"] == "Bearer t0k"
    tokens = iter(["first", "refreshed"])
    session.token = lambda: next(tokens)
    assert [session.headers()["authorization"] for _ in range(2)] == [
        "Bearer first",
        "Bearer refreshed",
    ]
    session.hint = 0.5
    assert 0.5 <= session.delay() <= 0.75  # a clean end: the server's hint, never sooner
    for attempt in range(1, 6):
        session.failed("refused")
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= session.delay() <= ceiling
    assert session.url().startswith("http://two/subscribe?")
    session.opened()
    assert session.failures == 0


def test_session_gives_up_after_max_retries() -> None:
    from publisher.errors import BackendUnavailable

    session = _session(["http://one"], max_retries=1)
    session.failed("refused")
    with pytest.raises(BackendUnavailable):
        session.failed("refused")


def test_session_takes_the_retry_hint_from_a_farewell_without_events() -> None:
    session = _session(["http://one"])
    decoder = session.decoder()
    assert list(session.steps(decoder, b"retry: 3000\nid: a=1-0,b=2-0\n\n")) == []
    assert (session.hint, session.last_event_id) == (3.0, "a=1-0,b=2-0")
    assert list(session.steps(decoder, b"retry: 750\n\n")) == []
    assert session.hint == 0.75
    assert list(session.steps(decoder, b"retry: 999999\n\n")) == []
    assert session.hint == 8.0  # capped at retry_max
