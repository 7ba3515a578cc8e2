"""The operator endpoints against two real gateway processes on one real Redis: every promise
that crosses replicas (counts, presence, join/leave, revocation, a dead replica's expiry)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer
from tests.support.sse import SSEConnection, sse_connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECRET = secrets.token_urlsafe(48)
TTL = 2.0  # GATEWAY_PRESENCE_TTL of these gateways: short, so expiry is quick to see
ENV = {
    "GATEWAY_JWT_SECRET": SECRET,
    "GATEWAY_PRESENCE_TTL": str(TTL),
    "GATEWAY_ANONYMOUS_PUBLISH": "*",
    "GATEWAY_RETRY_MS": "100",
}


def token(sub: str, *, subscribe: tuple[str, ...] = ("*",), admin: tuple[str, ...] = ()) -> str:
    claims = {
        "sub": sub,
        # A day: ADMIN below is minted at collection, possibly many minutes before its tests run
        # (it once expired 10 minutes into a slow suite run).
        "exp": int(time.time()) + 86400,
        "sse": {"subscribe": list(subscribe), "admin": list(admin)},
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


ADMIN = {"authorization": "Bearer " + token("ops", admin=("*",))}


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    folder = tmp_path_factory.mktemp("operator")
    pair = [GatewayProcess(redis_server.url, env=ENV, log_path=folder / f"{n}.log") for n in "ab"]
    try:
        for gateway in pair:
            gateway.start()
        yield pair[0], pair[1]
    finally:
        for gateway in pair:
            gateway.stop()
    for gateway in pair:
        assert gateway.log_path is not None
        assert "Traceback" not in gateway.log_path.read_text(errors="replace")


class Streams:
    """Open SSE streams as some token subject; all closed when the test ends."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        # Held on purpose: a collected SSEConnection finalizes its chunk iterator, which closes
        # the response - the stream would end behind the test's back.
        self.opened: list[SSEConnection] = []

    async def open(self, gateway: GatewayProcess, path: str, sub: str) -> SSEConnection:
        headers = {"authorization": "Bearer " + token(sub)}
        stream = await self._stack.enter_async_context(
            sse_connect(gateway.url + path, headers=headers)
        )
        assert (await stream.next_frame()) is not None  # the preamble: joined
        self.opened.append(stream)
        return stream


@pytest.fixture
async def streams() -> AsyncIterator[Streams]:
    async with AsyncExitStack() as stack:
        yield Streams(stack)


async def get(gateway: GatewayProcess, path: str, headers: dict[str, str] = ADMIN) -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(gateway.url + path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(probe: Callable[[], Any], expected: Any, timeout: float = 5.0) -> float:
    """Poll until ``await probe() == expected``; the seconds it took."""
    started = time.monotonic()
    value = None
    while time.monotonic() - started < timeout:
        value = await probe()
        if value == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {value!r}, expected {expected!r}")


def subscribers(gateway: GatewayProcess, channel: str) -> Callable[[], Any]:
    async def probe() -> int:
        return int((await get(gateway, f"/channels/{channel}"))["subscribers"])

    return probe


def clients(gateway: GatewayProcess, channel: str) -> Callable[[], Any]:
    async def probe() -> list[dict[str, Any]]:
        return list((await get(gateway, f"/channels/{channel}/presence"))["clients"])

    return probe


async def publish(gateway: GatewayProcess, channel: str, message: Any) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(f"{gateway.url}/publish/{channel}", json=message)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_subscribers_are_counted_over_both_replicas(replicas, streams):
    a, b = replicas
    first = await streams.open(a, "/subscribe/op-count", "u1")
    await streams.open(a, "/subscribe?channel=op-count&channel=op-other", "u2")
    await streams.open(b, "/subscribe/op-count", "u3")
    await eventually(subscribers(a, "op-count"), 3)
    await eventually(subscribers(b, "op-count"), 3)
    await eventually(subscribers(b, "op-other"), 1)
    await first.response.aclose()
    await eventually(subscribers(b, "op-count"), 2)


async def test_channel_info_describes_the_history(replicas):
    a, b = replicas
    empty = await get(b, "/channels/op-history")
    assert empty == {
        "channel": "op-history",
        "subscribers": 0,
        "last_id": "0-0",
        "history": {"length": 0, "first_id": None, "last_id": None},
    }
    ids = [await publish(a, "op-history", {"n": n}) for n in range(3)]
    info = await get(b, "/channels/op-history")
    assert info["last_id"] == ids[-1]
    assert info["history"] == {"length": 3, "first_id": ids[0], "last_id": ids[-1]}


async def test_presence_lists_subjects_over_both_replicas(replicas, streams):
    a, b = replicas
    await streams.open(a, "/subscribe/op-presence", "alice")
    await streams.open(b, "/subscribe/op-presence", "alice")
    await streams.open(b, "/subscribe/op-presence", "bob")
    expected = [{"subject": "alice", "connections": 2}, {"subject": "bob", "connections": 1}]
    await eventually(clients(a, "op-presence"), expected)
    await eventually(clients(b, "op-presence"), expected)


async def test_join_and_leave_reach_a_listener_on_the_other_replica(replicas, streams):
    a, b = replicas
    listener = await streams.open(b, "/subscribe/op-join?presence=1", "watcher")
    quiet = await streams.open(b, "/subscribe/op-join", "quiet")
    own = await listener.next_event()  # its own arrival comes first
    assert own is not None and own.event == "gateway.join"
    assert own.json() == {"channel": "op-join", "subject": "watcher"}
    async with sse_connect(a.url + "/subscribe/op-join", headers=_bearer("carol")) as carol:
        await carol.next_frame()
        joined = await _next_named(listener, "gateway.join", "carol")
        assert joined.json() == {"channel": "op-join", "subject": "carol"}
    left = await _next_named(listener, "gateway.leave", "carol")
    assert left.json() == {"channel": "op-join", "subject": "carol"}
    message_id = await publish(a, "op-join", {"after": "leave"})
    plain = await quiet.next_event()  # no presence events for a stream that did not ask
    assert plain is not None and plain.event == "message" and plain.id == message_id


def _bearer(sub: str) -> dict[str, str]:
    return {"authorization": "Bearer " + token(sub)}


async def _next_named(stream: SSEConnection, name: str, subject: str) -> Any:
    while True:
        event = await stream.next_event(timeout=5)
        assert event is not None, "the stream ended"
        if event.event == name and event.json()["subject"] == subject:
            return event


async def test_revoking_a_channel_closes_its_streams_on_every_replica(replicas, streams):
    a, b = replicas
    on_a = await streams.open(a, "/subscribe/op-revoke", "r1")
    on_b = await streams.open(b, "/subscribe?channel=op-revoke&channel=op-spared", "r2")
    spared = await streams.open(b, "/subscribe/op-spared", "r3")
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.delete(a.url + "/channels/op-revoke/subscribers", headers=ADMIN)
    assert response.status_code == 202, response.text
    assert response.json()["channel"] == "op-revoke" and response.json()["replicas"] >= 2
    for stream in (on_a, on_b):
        await _assert_revoked(stream)
    kept = await publish(a, "op-spared", {"still": "here"})
    event = await spared.next_event()
    assert event is not None and event.id == kept
    again = await streams.open(a, "/subscribe/op-revoke", "r1")  # the token is still valid
    assert not again.closed


async def _assert_revoked(stream: SSEConnection) -> None:
    farewell = await stream.next_event()
    assert farewell is not None and farewell.event == "gateway.revoked"
    assert farewell.json() == {"reason": "revoked"}
    assert stream.parser.retry is not None and 1000 <= stream.parser.retry <= 5000
    assert await stream.next_frame() is None  # and the stream ends


async def test_disconnect_closes_every_stream_of_a_subject(replicas, streams):
    a, b = replicas
    mallory = [
        await streams.open(a, "/subscribe/op-sub-1", "mallory"),
        await streams.open(b, "/subscribe/op-sub-2", "mallory"),
    ]
    alice = await streams.open(a, "/subscribe/op-sub-1", "alice")
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(
            b.url + "/disconnect", json={"subject": "mallory"}, headers=ADMIN
        )
    assert response.status_code == 202, response.text
    for stream in mallory:
        await _assert_revoked(stream)
    kept = await publish(b, "op-sub-1", {"alice": "stays"})
    event = await alice.next_event()
    assert event is not None and event.id == kept
    await eventually(clients(a, "op-sub-1"), [{"subject": "alice", "connections": 1}])


async def test_a_killed_replica_leaves_the_counts_within_the_ttl(
    replicas, streams, redis_server: RedisServer, tmp_path: Path
):
    a, _ = replicas
    doomed = GatewayProcess(redis_server.url, env=ENV, log_path=tmp_path / "doomed.log").start()
    try:
        await streams.open(a, "/subscribe/op-dead", "survivor")
        for n in range(2):
            await streams.open(doomed, "/subscribe/op-dead", f"doomed-{n}")
        await eventually(subscribers(a, "op-dead"), 3)
        doomed.kill()  # SIGKILL: no goodbye, its fields stay in Redis until they expire
        gone = await eventually(subscribers(a, "op-dead"), 1, timeout=TTL + 3)
        assert gone <= TTL + 0.5, f"took {gone:.2f}s with a TTL of {TTL}s"
        await eventually(clients(a, "op-dead"), [{"subject": "survivor", "connections": 1}])
    finally:
        doomed.stop()

    async def fields() -> int:  # the dead replica's fields go with the survivor's next refresh
        return len(redis_server.client().hkeys("sse:subjects:{op-dead}"))

    await eventually(fields, 1, timeout=TTL)
    assert len(redis_server.client().hkeys("sse:presence:{op-dead}")) == 1


async def test_a_replica_stopped_cleanly_leaves_the_counts_at_once(
    replicas, streams, redis_server: RedisServer, tmp_path: Path
):
    a, _ = replicas
    env = {**ENV, "GATEWAY_PRESENCE_TTL": "120", "GATEWAY_DRAIN_WINDOW": "0.2"}
    leaving = GatewayProcess(redis_server.url, env=env, log_path=tmp_path / "leaving.log").start()
    try:
        await streams.open(leaving, "/subscribe/op-stop", "leaver")
        await eventually(subscribers(a, "op-stop"), 1)
        leaving.terminate()  # SIGTERM: drain, then write the departures on the way out
        gone = await eventually(subscribers(a, "op-stop"), 0, timeout=10)
        assert gone < 10  # far inside the 120 s a dead replica would take
    finally:
        leaving.stop()


async def test_operator_endpoints_need_the_admin_right(replicas):
    a, _ = replicas
    scoped = _bearer_admin(("ops-*",))
    cases = [
        ("GET", "/channels/ops-1", {}, 401),
        ("GET", "/channels/ops-1", _bearer("plain"), 403),
        ("GET", "/channels/ops-1", scoped, 200),
        ("GET", "/channels/ops-1/presence", scoped, 200),
        ("GET", "/channels/other/presence", scoped, 403),
        ("DELETE", "/channels/other/subscribers", scoped, 403),
        ("DELETE", "/channels/ops-1/subscribers", {}, 401),
        ("POST", "/disconnect", scoped, 403),  # a subject reaches every channel: needs "*"
        ("POST", "/disconnect", {}, 401),
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        for method, path, headers, status in cases:
            response = await http.request(
                method, a.url + path, headers=headers, json={"subject": "x"}
            )
            assert response.status_code == status, (method, path, response.text)
            if status >= 400:
                assert set(response.json()) == {"error", "detail"}


def _bearer_admin(patterns: tuple[str, ...]) -> dict[str, str]:
    return {"authorization": "Bearer " + token("scoped", admin=patterns)}


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        ("GET", "/channels/bad%20name", None, None, 400, "invalid_channel"),
        ("GET", "/channels/__keyspace", None, None, 400, "invalid_channel"),
        ("GET", "/channels/" + "x" * 600, None, None, 400, "invalid_request"),
        ("DELETE", "/channels/a*b/subscribers", None, None, 400, "invalid_channel"),
        ("POST", "/disconnect", b"{not json", "application/json", 400, "invalid_json"),
        ("POST", "/disconnect", b'{"subject": ""}', "application/json", 400, "invalid_subject"),
        ("POST", "/disconnect", b'{"subject": 7}', "application/json", 400, "invalid_subject"),
        ("POST", "/disconnect", b"[]", "application/json", 400, "invalid_subject"),
        ("POST", "/disconnect", b'{"subject":"x"}', "text/plain", 415, "unsupported_media_type"),
        ("POST", "/disconnect", b"x" * 5000, "application/json", 413, "body_too_large"),
    ],
)
async def test_bad_operator_requests_get_a_clear_4xx(
    replicas, method, path, body, content_type, status, code
):
    a, _ = replicas
    headers = dict(ADMIN)
    if content_type is not None:
        headers["content-type"] = content_type
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.request(method, a.url + path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


async def test_presence_query_flag_is_validated(replicas):
    a, _ = replicas
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(a.url + "/subscribe/op-x?presence=maybe", headers=_bearer("v"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_openapi_documents_the_operator_errors(replicas):
    a, _ = replicas
    schema = httpx.get(a.url + "/openapi.json", timeout=5).json()
    info = schema["paths"]["/channels/{channel}"]["get"]["responses"]
    assert {"200", "400", "401", "403", "503"} <= set(info)
    disconnect = schema["paths"]["/disconnect"]["post"]
    assert {"202", "400", "401", "403", "408", "413", "415", "503"} <= set(disconnect["responses"])
    body = disconnect["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["subject"]
    error = json.dumps(info["403"])
    assert "ErrorBody" in error
