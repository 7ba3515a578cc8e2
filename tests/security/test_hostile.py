"""Hostile input against a real gateway process: each is bounded and answered with a clear 4xx,
never a 500 (the ``open_gateway`` fixture also checks its log for crashes when the session ends).

Limits in force (``OPEN_ENV``): 64 KiB bodies, 1 s to send a body, 100 messages per batch,
50 events replayed per resume, 32 channels per stream.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

MAX_BODY = 65536


def post(gateway: GatewayProcess, channel: str, **kw: object) -> httpx.Response:
    return httpx.post(f"{gateway.url}/publish/{channel}", timeout=10, **kw)


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == code


def raw_exchange(gateway: GatewayProcess, parts: list[bytes], pause: float = 0.0) -> bytes:
    """Send ``parts`` over one connection, ``pause`` seconds apart; return what comes back."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server already answered and closed
            time.sleep(pause)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


# -- bodies --------------------------------------------------------------------------------


def test_declared_oversized_body_is_refused_before_reading(open_gateway: GatewayProcess):
    response = raw_exchange(
        open_gateway,
        [
            b"POST /publish/hostile.big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        ],
    )
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b'"error":"body_too_large"' in response


def test_chunked_body_without_length_is_cut_at_the_limit(open_gateway: GatewayProcess):
    def body() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(200):  # 200 x 8 KiB, far past the 64 KiB limit
            yield b"x" * 8192

    response = post(
        open_gateway,
        "hostile.chunked",
        content=body(),
        headers={"content-type": "application/json"},
    )
    assert_json_error(response, 413, "body_too_large")


def test_body_just_under_the_limit_is_accepted(open_gateway: GatewayProcess):
    payload = b'"' + b"x" * (MAX_BODY - 2) + b'"'
    response = post(
        open_gateway, "hostile.edge", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"[" * 5000 + b"]" * 5000, "invalid_json", id="deep-array"),
        pytest.param(b'{"a":' * 2000 + b"1" + b"}" * 2000, "invalid_json", id="deep-object"),
        pytest.param(b"1" + b"0" * 400, "invalid_json", id="huge-integer"),
        pytest.param(b"1e999999", "invalid_json", id="huge-exponent"),
        pytest.param(b'{"n": -1e400}', "invalid_json", id="negative-infinity"),
        pytest.param(b"NaN", "invalid_json", id="nan"),
        pytest.param(b'"\xff\xfe"', "invalid_json", id="invalid-utf8"),
        pytest.param(b'"\xed\xa0\x80"', "invalid_json", id="utf8-surrogate"),
        pytest.param(b'"\\ud800"', "invalid_json", id="lone-surrogate-escape"),
        pytest.param(b'{"a": 1} trailing', "invalid_json", id="trailing-garbage"),
        pytest.param(b"\x00\x00\x00", "invalid_json", id="nul-bytes"),
        pytest.param(b"   ", "empty_body", id="blank"),
    ],
)
def test_hostile_json_gets_400(open_gateway: GatewayProcess, body: bytes, code: str):
    response = post(
        open_gateway, "hostile.json", content=body, headers={"content-type": "application/json"}
    )
    assert_json_error(response, 400, code)


def test_hostile_ndjson_line_is_named(open_gateway: GatewayProcess):
    body = b'{"ok": 1}\n' + b"[" * 3000 + b"\n"
    response = post(
        open_gateway, "hostile.nd", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert_json_error(response, 400, "invalid_json")
    assert "line 2" in response.json()["detail"]


def test_too_many_messages_in_one_batch(open_gateway: GatewayProcess):
    body = b"1\n" * 101
    response = post(
        open_gateway, "hostile.nd", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert_json_error(response, 413, "batch_too_large")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json-patch+json"])
def test_other_media_types_get_415(open_gateway: GatewayProcess, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    response = post(open_gateway, "hostile.mt", content=b"{}", headers=headers)
    assert_json_error(response, 415, "unsupported_media_type")


# -- slow clients --------------------------------------------------------------------------


def test_slow_body_with_content_length_gets_408(open_gateway: GatewayProcess):
    head = (
        b"POST /publish/hostile.slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    response = raw_exchange(open_gateway, [head, b'{"a":'], pause=0.1)
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert b'"error":"body_timeout"' in response
    assert time.monotonic() - started < 8  # answered at the 1 s deadline, not when we give up


def test_trickled_chunked_body_gets_408(open_gateway: GatewayProcess):
    head = (
        b"POST /publish/hostile.trickle HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    trickle = [b"1\r\n \r\n"] * 14  # one byte every 0.1 s: alive, never done by the 1 s limit
    response = raw_exchange(open_gateway, [head, *trickle], pause=0.1)
    assert response.startswith(b"HTTP/1.1 408"), response[:200]


# -- names and ids: injection --------------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    [
        "a%0D%0Aevent:%20evil",
        "a%0Adata:%20x",
        "a%00b",
        "%E2%80%A8",  # U+2028, a line separator in some parsers
        "x" * 600,  # over the path limit
        "x" * 129,  # over the channel limit
    ],
)
def test_channel_names_with_control_characters_get_400(open_gateway: GatewayProcess, channel: str):
    response = post(open_gateway, channel, json={})
    assert response.status_code == 400
    response = httpx.get(f"{open_gateway.url}/subscribe/{channel}", timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize("event", ["a\r\ndata: evil", "a\nb", "gateway.gap", "x" * 65, "é"])
def test_event_names_with_injection_get_400(open_gateway: GatewayProcess, event: str):
    response = post(open_gateway, "hostile.ev", json={}, params={"event": event})
    assert response.status_code == 400
    assert response.json()["error"] in {"invalid_event", "invalid_request"}


def test_raw_cr_lf_in_a_header_is_refused_by_the_server(open_gateway: GatewayProcess):
    response = raw_exchange(
        open_gateway,
        [b"GET /subscribe/hostile.hdr HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1-0\revent: x\r\n\r\n"],
    )
    assert response.startswith(b"HTTP/1.1 400"), response[:200]


async def test_injected_last_event_id_cannot_reach_the_stream(open_gateway: GatewayProcess):
    url = open_gateway.url + "/subscribe/hostile.lei?lastEventId=1-0%0D%0Aevent:%20evil%0A%0Adata:x"
    async with sse_connect(url) as stream:
        gap = await stream.next_event()
        assert gap is not None and gap.event == "gateway.gap"
        assert gap.json()["reason"] == "malformed"
    assert "evil" not in str(stream.parser.comments)


# -- ids crafted to scan history -----------------------------------------------------------


async def test_resume_from_the_beginning_of_a_long_history_is_capped(
    open_gateway: GatewayProcess,
):
    body = b"".join(b'{"n":%d}\n' % n for n in range(100))
    for _ in range(3):  # 300 entries; replay_max is 50
        ndjson = {"content-type": "application/x-ndjson"}
        assert post(open_gateway, "hostile.hist", content=body, headers=ndjson).status_code == 202
    for crafted in ("0-0", "0-1", "1-0"):
        async with sse_connect(
            open_gateway.url + "/subscribe/hostile.hist", last_event_id=crafted
        ) as stream:
            await stream.next_frame()  # preamble
            gap = await stream.next_event()
            assert gap is not None and gap.event == "gateway.gap"
            assert gap.json()["reason"] == "truncated"
            live = post(open_gateway, "hostile.hist", json={"live": crafted})
            event = await stream.next_event()
            # nothing was replayed: the next event after the gap is the live one
            assert event is not None and event.id == live.json()["id"]


@pytest.mark.parametrize(
    ("crafted", "reason"),
    [
        ("18446744073709551615-18446744073709551615", "unknown"),  # beyond any real id
        ("99999999999999999999999-0", "malformed"),
        ("hostile.far=1-0," * 2000, "malformed"),  # a 32 KiB vector
        ("-1-0", "malformed"),
    ],
)
async def test_crafted_ids_get_a_gap_not_a_scan(
    open_gateway: GatewayProcess, crafted: str, reason: str
):
    async with sse_connect(open_gateway.url + "/subscribe/hostile.far", last_event_id=crafted) as s:
        assert s.response.status_code == 200
        await s.next_frame()
        gap = await s.next_event()
        assert gap is not None and gap.event == "gateway.gap"
        assert gap.json()["reason"] == reason


# -- request size --------------------------------------------------------------------------


def test_thousands_of_channels_on_one_request_get_400(open_gateway: GatewayProcess):
    query = "&".join(f"channel=c{n}" for n in range(2000))
    response = httpx.get(f"{open_gateway.url}/subscribe?{query}", timeout=10)
    assert_json_error(response, 400, "too_many_channels")


def test_huge_url_is_refused_with_414(open_gateway: GatewayProcess):
    query = "&".join(f"channel=c{n}" for n in range(20000))  # ~200 KiB
    response = raw_exchange(
        open_gateway, [f"GET /subscribe?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()]
    )
    assert response.startswith(b"HTTP/1.1 414"), response[:200]
    assert b'"error":"uri_too_long"' in response


def test_gateway_still_serves_after_all_of_the_above(open_gateway: GatewayProcess):
    assert httpx.get(open_gateway.url + "/readyz", timeout=10).status_code == 200
    response = post(open_gateway, "hostile.after", json={"ok": True})
    assert response.status_code == 202


async def test_many_concurrent_hostile_requests_do_not_crash(open_gateway: GatewayProcess):
    async with httpx.AsyncClient(timeout=20) as http:
        requests = [
            http.post(
                f"{open_gateway.url}/publish/hostile.burst",
                content=b"[" * 3000,
                headers={"content-type": "application/json"},
            )
            for _ in range(50)
        ]
        responses = await asyncio.gather(*requests)
    assert {r.status_code for r in responses} == {400}
