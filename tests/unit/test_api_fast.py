"""The lean subscribe path (gateway.api.fast) answers exactly as the full FastAPI routes do: the
same status, headers and first bytes for the requests it serves, and it leaves every other request
(errors, HEAD, CORS) to the routes. Driven in-process on the embedded store, both ways."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.app import GatewayApp, create_app
from gateway.settings import Settings

SECRET = secrets.token_hex(32)


@pytest.fixture
async def app() -> AsyncIterator[GatewayApp]:
    app = create_app(Settings(max_channels_per_stream=3, max_body_bytes=1000))
    assert isinstance(app, GatewayApp)
    async with app.router.lifespan_context(app) as state:
        app.state_for_tests = state  # type: ignore[attr-defined]
        yield app


def _scope(app: Any, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"gw"), (b"x-request-id", b"req-1"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": dict(app.state_for_tests),
    }


async def _exchange(app: Any, method: str, path: str, query: bytes = b"", headers=(), body=b""):
    """The response start and the first body bytes; then the client hangs up."""
    hang_up = asyncio.Event()
    request = [{"type": "http.request", "body": body, "more_body": False}]
    first_body: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not first_body.done():
            first_body.set_result(None)

    task = asyncio.create_task(app(_scope(app, method, path, query, list(headers)), receive, send))
    await asyncio.wait_for(first_body, 5)
    hang_up.set()
    await asyncio.wait_for(task, 5)
    return sent[0]["status"], sent[0]["headers"], sent[1]["body"]


async def _both_ways(app: Any, *request: Any) -> tuple[Any, Any, bool]:
    fast = app.fast_paths
    served: list[bool] = []
    original = fast.serve

    async def spy(*args: Any) -> bool:
        served.append(await original(*args))
        return served[-1]

    fast.serve = spy
    lean = await _exchange(app, *request)
    app.fast_paths = None
    try:
        full = await _exchange(app, *request)
    finally:
        app.fast_paths = fast
    return lean, full, served == [True]


@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/subscribe/orders"),
        ("GET", "/subscribe", b"channel=a&channel=b&channel=a"),
        ("GET", "/subscribe/orders", b"lastEventId=0-0"),
        ("GET", "/subscribe/orders", b"", [(b"last-event-id", b"not-an-id")]),
        ("GET", "/subscribe/orders", b"", [(b"accept", b"application/x-ndjson")]),
    ],
)
async def test_lean_path_serves_a_stream_exactly_as_the_routes_do(app, request_):
    lean, full, served = await _both_ways(app, *request_)
    assert served, "the lean path should have served this request"
    assert lean == full


@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/subscribe/__redis__"),  # invalid channel: 400
        ("GET", "/subscribe", b""),  # no channel: 400
        ("GET", "/subscribe", b"channel=a&channel=b&channel=c&channel=d"),  # too many: 400
        ("GET", "/subscribe/a/b"),  # no such route: 404
        ("GET", "/subscribe/", b""),  # redirect
        ("HEAD", "/subscribe/orders"),  # 405
        ("POST", "/subscribe/orders"),  # 405
    ],
)
async def test_everything_else_is_left_to_the_routes(app, request_):
    lean, full, served = await _both_ways(app, *request_)
    assert not served
    assert lean == full and lean[0] != 200


async def test_a_refused_token_gets_the_routes_401():
    app = create_app(Settings(jwt_secret=SECRET))
    async with app.router.lifespan_context(app) as state:
        app.state_for_tests = state  # type: ignore[attr-defined]
        headers = [(b"authorization", b"Bearer nonsense")]
        lean, full, served = await _both_ways(app, "GET", "/subscribe/orders", b"", headers)
        assert not served and lean == full and lean[0] == 401
        lean, full, served = await _both_ways(app, "GET", "/subscribe/orders")
        assert not served and lean == full and lean[0] == 401


async def test_cross_origin_requests_take_the_full_stack_when_cors_is_on():
    app = create_app(Settings(cors_origins="https://app.example"))
    async with app.router.lifespan_context(app) as state:
        app.state_for_tests = state  # type: ignore[attr-defined]
        origin = [(b"origin", b"https://app.example")]
        lean, full, served = await _both_ways(app, "GET", "/subscribe/orders", b"", origin)
        assert not served and lean == full
        assert (b"access-control-allow-origin", b"https://app.example") in lean[1]
        _, _, served = await _both_ways(app, "GET", "/subscribe/orders")
        assert served


JSON = [(b"content-type", b"application/json")]
NDJSON = [(b"content-type", b"application/x-ndjson")]


def _masked(answer: tuple[int, list[Any], bytes]) -> tuple[int, list[Any], Any]:
    """Stream ids differ between two publishes; everything else must not."""
    status, headers, body = answer
    parsed = json.loads(body)
    for key in ("id", "ids"):
        if key in parsed:
            parsed[key] = re.sub(r"\d+-\d+", "ID", json.dumps(parsed[key]))
    return status, headers, parsed


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (("POST", "/publish/orders", b"", JSON, b'{"a": [1, 2]}'), 202),
        (("POST", "/publish/orders", b"event=created", NDJSON, b'{"a":1}\n\n{"b":2}\n'), 202),
        (("POST", "/publish/orders", b"", JSON, b'{"a": '), 400),  # invalid JSON
        (("POST", "/publish/orders", b"", JSON, b" "), 400),  # empty
        (("POST", "/publish/orders", b"", NDJSON, b"\n"), 400),  # no messages
        (("POST", "/publish/orders", b"", [(b"content-type", b"text/plain")], b"1"), 415),
        (("POST", "/publish/orders", b"", JSON, b"[" + b"1," * 600 + b"1]"), 413),
        (("POST", "/publish/orders", b"event=gateway.gap", JSON, b"{}"), 400),  # reserved
    ],
)
async def test_lean_path_publishes_and_refuses_exactly_as_the_route_does(app, request_, status):
    lean, full, served = await _both_ways(app, *request_)
    assert served, "the lean path should have answered this request"
    assert lean[0] == status
    assert _masked(lean) == _masked(full)


@pytest.mark.parametrize(
    "request_",
    [
        ("POST", "/publish/__keyspace", b"", JSON, b"{}"),  # invalid channel: 400
        ("POST", "/publish/a/b", b"", JSON, b"{}"),  # no such route: 404
        ("POST", "/publish/" + "a" * 513, b"", JSON, b"{}"),  # over the path's max_length
        ("POST", "/publish/orders", b"event=" + b"e" * 513, JSON, b"{}"),  # over max_length
        ("GET", "/publish/orders"),  # 405
    ],
)
async def test_publish_errors_found_before_the_body_are_left_to_the_route(app, request_):
    lean, full, served = await _both_ways(app, *request_)
    assert not served
    assert lean == full and lean[0] >= 400


async def test_an_anonymous_publish_with_auth_on_gets_the_routes_401():
    app = create_app(Settings(jwt_secret=SECRET))
    async with app.router.lifespan_context(app) as state:
        app.state_for_tests = state  # type: ignore[attr-defined]
        lean, full, served = await _both_ways(app, "POST", "/publish/orders", b"", JSON, b"{}")
        assert not served and lean == full and lean[0] == 401


async def test_both_paths_share_idempotency_keys_and_refuse_bad_ones(app):
    keyed = [*JSON, (b"idempotency-key", b"order-1")]
    lean, full, served = await _both_ways(app, "POST", "/publish/orders", b"", keyed, b"{}")
    assert served and lean == full and lean[0] == 202  # the retry got the first publish's id
    bad = [*JSON, (b"idempotency-key", b"no spaces")]
    lean, full, served = await _both_ways(app, "POST", "/publish/orders", b"", bad, b"{}")
    assert served and lean == full and lean[0] == 400


async def test_both_paths_meet_the_same_rate_limits():
    app = create_app(Settings(rate_publish=0.01, rate_publish_burst=2, rate_connect=0.01,
                              rate_connect_burst=2))  # fmt: skip
    async with app.router.lifespan_context(app) as state:
        app.state_for_tests = state  # type: ignore[attr-defined]
        lean, full, _ = await _both_ways(app, "POST", "/publish/orders", b"", JSON, b"{}")
        assert (lean[0], full[0]) == (202, 202)  # one token each: the burst is spent
        lean, full, served = await _both_ways(app, "POST", "/publish/orders", b"", JSON, b"{}")
        assert served and lean == full and lean[0] == 429
        lean, full, _ = await _both_ways(app, "GET", "/subscribe/orders")
        assert (lean[0], full[0]) == (200, 200)
        lean, full, served = await _both_ways(app, "GET", "/subscribe/orders")
        assert not served and lean == full and lean[0] == 429
        assert (b"retry-after", b"100") in lean[1]
