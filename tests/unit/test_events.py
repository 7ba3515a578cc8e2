"""A message's SSE frame is sse-starlette's own encoding, spliced (gateway.events)."""

from __future__ import annotations

import pytest
from sse_starlette.event import ServerSentEvent

from gateway.events import Event, durable_event


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
