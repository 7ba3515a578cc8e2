"""A message's SSE frame is sse-starlette's own encoding, spliced (gateway.events)."""

from __future__ import annotations

import orjson
import pytest
from sse_starlette.event import ServerSentEvent

from gateway.events import REVOKED, SSE, Event, durable_event
from gateway.ndjson import NDJSON


@pytest.mark.parametrize("name", ["", "created", "order.paid", "a:b-c_d"])
@pytest.mark.parametrize(
    "data",
    [b"{}", b'{"a":"x\\ny","b":[1,2.5,null]}', b'"\xc3\xa9\xe2\x82\xac \\u2028"', b"[]", b"0"],
)
def test_the_spliced_frame_is_what_sse_starlette_writes(name: str, data: bytes) -> None:
    event = durable_event("ch", "1732190000000-7", (1732190000000, 7), name, data)
    assert isinstance(event, Event)
    expected = ServerSentEvent(
        id="1732190000000-7", data=data.decode(), event=name or None, sep="\n"
    )
    assert event.frame == expected.encode()


@pytest.mark.parametrize("attempt", range(20))
def test_the_revoked_farewell_is_an_event_with_a_jittered_retry_of_a_second_or_more(
    attempt: int,
) -> None:
    frame = SSE.farewell(REVOKED).decode()
    fields = dict(line.split(": ", 1) for line in frame.strip().split("\n"))
    assert fields["event"] == "gateway.revoked"
    assert orjson.loads(fields["data"]) == {"reason": "revoked"}
    assert 1000 <= int(fields["retry"]) <= 5000
    line = orjson.loads(NDJSON.farewell(REVOKED))
    assert line["type"] == "close" and line["reason"] == "revoked"
    assert 1000 <= line["retry"] <= 5000
