from __future__ import annotations

import asyncio
import time

import pytest
from starlette.requests import Request

from gateway.errors import ClientError
from gateway.publishing import parse_batch, read_body, require_channel


def test_json_body_is_compacted() -> None:
    assert parse_batch("application/json", b' {"a" : [1, 2]} ', None, 10) == (
        False,
        [("", b'{"a":[1,2]}')],
    )


def test_charset_parameter_is_accepted() -> None:
    assert parse_batch("application/json; charset=utf-8", b"1", "evt", 10) == (
        False,
        [("evt", b"1")],
    )


def test_ndjson_body_is_split_per_line() -> None:
    body = b'{"a":1}\n\n[2]\r\n"three"\n'
    assert parse_batch("application/x-ndjson", body, None, 10) == (
        True,
        [("", b'{"a":1}'), ("", b"[2]"), ("", b'"three"')],
    )


def test_newlines_inside_strings_stay_escaped() -> None:
    _, batch = parse_batch("application/json", b'{"s": "a\\nb\\r\\nc"}', None, 1)
    assert b"\n" not in batch[0][1] and b"\r" not in batch[0][1]


@pytest.mark.parametrize(
    ("ctype", "body", "event", "status", "code"),
    [
        ("application/json", b"", None, 400, "empty_body"),
        ("application/json", b"{bad", None, 400, "invalid_json"),
        ("application/json", b"\xff\xfe", None, 400, "invalid_json"),
        ("application/json", b"NaN", None, 400, "invalid_json"),
        ("application/json", b"[" * 2000 + b"]" * 2000, None, 400, "invalid_json"),
        ("text/plain", b"1", None, 415, "unsupported_media_type"),
        (None, b"1", None, 415, "unsupported_media_type"),
        ("application/json", b"1", "bad\nevent", 400, "invalid_event"),
        ("application/json", b"1", "gateway.gap", 400, "invalid_event"),
        ("application/x-ndjson", b"\n\n", None, 400, "empty_body"),
        ("application/x-ndjson", b"1\n{oops\n", None, 400, "invalid_json"),
        ("application/x-ndjson", b"1\n" * 11, None, 413, "batch_too_large"),
    ],
)
def test_bad_bodies_are_client_errors(ctype, body, event, status, code) -> None:
    with pytest.raises(ClientError) as caught:
        parse_batch(ctype, body, event, 10)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_invalid_channel_is_rejected() -> None:
    with pytest.raises(ClientError) as caught:
        require_channel("a b")
    assert caught.value.status == 400


def _request(messages: list[dict[str, object]], headers: list[tuple[bytes, bytes]] = []):  # noqa: B006
    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that sent part of its body and went quiet
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": "POST", "headers": headers, "query_string": b""}
    return Request(scope, receive)


async def test_a_body_in_several_messages_is_joined() -> None:
    request = _request(
        [
            {"type": "http.request", "body": b'{"a":', "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ]
    )
    assert await read_body(request, 100, 1.0) == b'{"a":1}'


@pytest.mark.parametrize("run", [1, 2])  # each on a fresh event loop: the check follows the loop
async def test_a_body_that_stops_arriving_gets_408_after_its_deadline(run: int) -> None:
    request = _request([{"type": "http.request", "body": b'{"a":', "more_body": True}])
    started = time.monotonic()
    with pytest.raises(ClientError) as refused:
        await read_body(request, 100, 0.2)
    assert refused.value.status == 408
    assert 0.2 <= time.monotonic() - started < 0.6


async def test_a_cancellation_that_is_not_the_deadline_stays_a_cancellation() -> None:
    task = asyncio.create_task(read_body(_request([]), 100, 5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_oversized_body_is_refused_while_it_streams() -> None:
    chunk = {"type": "http.request", "body": b"x" * 60, "more_body": True}
    with pytest.raises(ClientError) as refused:
        await read_body(_request([chunk, dict(chunk)]), 100, 1.0)
    assert refused.value.status == 413
