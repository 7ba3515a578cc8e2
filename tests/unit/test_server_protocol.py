"""gateway.server.protocol.HttpProtocol in-process, against a fake transport (as uvicorn's
tests/protocols/test_http.py test its protocols), with the real app and its lifespan (embedded
store): ASGI requests, pipelining, the hot stream and publish paths, flow control, hygiene."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from gateway.app import create_app
from gateway.control import CONTROL_CHANNEL
from gateway.server import protocol as protocol_module
from gateway.server.protocol import HttpProtocol
from gateway.settings import Settings

pytestmark = pytest.mark.timeout(20)


class FakeTransport:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.eof = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.buffer += data

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


@pytest.fixture
async def state() -> AsyncIterator[dict[str, Any]]:
    app = create_app(Settings(redis_url=None, unsubscribe_delay=0.05))
    async with app.router.lifespan_context(app) as lifespan_state:
        lifespan_state["app"] = app
        yield lifespan_state


def connect(state: dict[str, Any]) -> tuple[HttpProtocol, FakeTransport]:
    protocol = HttpProtocol(state["app"], state, keep_alive_timeout=5)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def publish_request(channel: str, body: bytes) -> bytes:
    head = f"POST /publish/{channel} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


async def test_an_app_request_is_answered_and_the_connection_kept(state):
    protocol, transport = connect(state)
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: transport.buffer.endswith(b'{"status":"ok"}'))
    assert transport.take().startswith(b"HTTP/1.1 200 OK\r\n")
    assert not transport.closed


async def test_pipelined_requests_are_answered_in_order(state):
    protocol, transport = connect(state)
    protocol.data_received(
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        + publish_request("p", b'{"a":1}')
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await until(lambda: transport.buffer.count(b"HTTP/1.1 ") == 3)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", transport.take()) == [b"404", b"202", b"200"]


async def test_a_stream_is_written_by_the_hub_directly_with_shared_chunk_bytes(state):
    hub = state["hub"]
    stream, stream_transport = connect(state)
    stream.data_received(b"GET /subscribe/u HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: b"retry:" in stream_transport.buffer)
    head = stream_transport.take()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    [subscription] = hub.subscriptions
    assert subscription.direct_state is not None  # in step: the hub writes to it directly
    publisher, publisher_transport = connect(state)
    publisher.data_received(publish_request("u", b'{"n":1}'))
    await until(lambda: b"data:" in stream_transport.buffer)
    chunk = stream_transport.take()
    frame = chunk.split(b"\r\n", 1)[1][:-2]
    assert chunk == b"%x\r\n%b\r\n" % (len(frame), frame)
    assert frame.startswith(b"id: ") and frame.endswith(b'data: {"n":1}\n\n')
    assert publisher_transport.take().startswith(b"HTTP/1.1 202 Accepted\r\n")


async def test_a_paused_stream_takes_the_slow_path_and_gets_all_on_resume(state):
    hub = state["hub"]
    stream, stream_transport = connect(state)
    stream.data_received(b"GET /subscribe/v HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: hub.subscriptions)
    [subscription] = hub.subscriptions
    await until(lambda: subscription.direct_state is not None)
    stream_transport.take()
    stream.pause_writing()
    assert subscription.direct_state is None and subscription.writing_since > 0  # the watchdog
    publisher, _ = connect(state)
    for n in range(3):
        publisher.data_received(publish_request("v", b'{"n":%d}' % n))
    await until(lambda: len(subscription._queue) == 3)
    assert stream_transport.buffer == b""
    stream.resume_writing()
    written = stream_transport.take()
    assert written.count(b"data:") == 3 and written.count(b"\r\n") == 2  # one chunk
    assert subscription.writing_since == 0.0 and subscription.direct_state is not None


async def test_a_lost_connection_ends_the_stream_and_frees_its_slot(state):
    hub, slots = state["hub"], state["slots"]
    stream, _ = connect(state)
    stream.data_received(b"GET /subscribe?channel=w1&channel=w2 HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: hub.subscriptions)
    assert slots.in_use == 1
    stream.connection_lost(None)
    assert not hub.subscriptions and slots.in_use == 0


async def test_a_closed_subscription_says_farewell_and_ends_the_chunked_body(state):
    hub = state["hub"]
    stream, transport = connect(state)
    stream.data_received(b"GET /subscribe/x HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: hub.subscriptions)
    [subscription] = hub.subscriptions
    subscription.close("revoked")
    await until(lambda: transport.buffer.endswith(b"0\r\n\r\n"))
    assert b'event: gateway.revoked\ndata: {"reason":"revoked"}' in transport.take()
    assert not hub.subscriptions and not transport.closed  # keep-alive: the next request
    stream.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: transport.buffer.endswith(b'{"status":"ok"}'))


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"POST /publish/a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST /publish/a HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (protocol_module.MAX_HEAD + 1) + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * (protocol_module.MAX_HEAD + 1) + b" HTTP/1.1\r\n\r\n", 414),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["cl-and-te", "two-content-types", "huge-header", "huge-target", "garbage"],
)
async def test_bad_heads_are_answered_and_the_connection_ended(state, request_bytes, status):
    protocol, transport = connect(state)
    protocol.data_received(request_bytes)
    assert transport.take().startswith(b"HTTP/1.1 %d " % status)
    assert transport.eof  # our side ended; closed after a short linger


async def test_a_head_that_never_ends_is_cut_off(state, monkeypatch):
    monkeypatch.setattr(protocol_module, "HEAD_TIMEOUT", 0.05)
    protocol, transport = connect(state)
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nX-Slow: a")
    await until(lambda: transport.buffer)
    assert transport.take().startswith(b"HTTP/1.1 408 ")


async def test_shutdown_closes_an_idle_connection_and_ends_a_stream(state):
    idle, idle_transport = connect(state)
    idle.shutdown()
    assert idle_transport.closed
    stream, transport = connect(state)
    stream.data_received(b"GET /subscribe/y HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: state["hub"].subscriptions)
    stream.shutdown()
    await until(lambda: transport.closed)
    assert transport.take().endswith(b"0\r\n\r\n")


async def test_a_stream_from_an_app_route_is_adopted_by_the_connection():
    """The seam for other features: any route's StreamResponse, served through the app (here a
    cross-origin request with CORS on, which the hot path leaves to the app and its CORS
    middleware), is written by the connection and the hub directly, like a hot one."""
    app = create_app(Settings(redis_url=None, cors_origins="https://app.example"))
    async with app.router.lifespan_context(app) as state:
        state["app"] = app
        stream, transport = connect(state)
        stream.data_received(
            b"GET /subscribe/z HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n"
        )
        await until(lambda: b"retry:" in transport.buffer)
        head = transport.take()
        assert b"access-control-allow-origin: https://app.example" in head.lower()
        [subscription] = state["hub"].subscriptions
        await until(lambda: subscription.direct_state is not None)
        stream.connection_lost(None)
        await until(lambda: not state["hub"].subscriptions and not stream.tasks)


async def test_a_finished_request_is_freed_without_the_cyclic_collector(state):
    """Regression: the scope's stream extension (a bound ``adopt``) made every exchange a
    reference cycle, left to a collector the CLI runs rarely (RSS crept in the soak)."""
    from gateway.server.exchange import Exchange

    protocol, transport = connect(state)
    gc.collect()
    gc.disable()
    try:
        for n in range(20):
            protocol.data_received(publish_request("freed", b'{"n":%d}' % n))
            protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: transport.buffer.count(b"HTTP/1.1 ") == 40)
        await asyncio.sleep(0.05)  # the last request's task finishes after its answer
        alive = [o for o in gc.get_objects() if type(o) is Exchange]
    finally:
        gc.enable()
    assert alive == []


async def test_a_presence_stream_written_directly_gets_join_events_in_order_once(state):
    """A join/leave signal is pushed (gateway.presence) into a stream the hub writes directly:
    the push takes it off the direct table first, so it lands between the events around it,
    nothing twice, and the stream goes back to direct writes once drained."""
    hub = state["hub"]
    stream, transport = connect(state)
    stream.data_received(b"GET /subscribe/p?presence=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: hub.subscriptions)
    [subscription] = hub.subscriptions
    assert subscription.presence
    await until(lambda: subscription.direct_state is not None)
    publisher, _ = connect(state)
    publisher.data_received(publish_request("p", b'{"n":1}'))
    await until(lambda: b'{"n":1}' in transport.buffer)
    assert subscription.direct_state is not None
    change = {"kind": "presence", "changes": [["join", "p", "alice"]]}
    await state["broker"].announce(CONTROL_CHANNEL, orjson.dumps(change))
    publisher.data_received(publish_request("p", b'{"n":2}'))
    await until(lambda: b'{"n":2}' in transport.buffer)
    body = transport.take()
    order = [body.index(b'{"n":1}'), body.index(b"event: gateway.join"), body.index(b'{"n":2}')]
    assert order == sorted(order)
    assert body.count(b"data: ") == 3  # n=1, the join, n=2: each once
    await until(lambda: subscription.direct_state is not None)


class CountingApp:
    """The app, counting the requests handed to it: zero means our protocol served them."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += scope["type"] == "http"
        await self.app(scope, receive, send)


def connect_counting(state: dict[str, Any]) -> tuple[HttpProtocol, FakeTransport, CountingApp]:
    app = CountingApp(state["app"])
    protocol = HttpProtocol(app, state, keep_alive_timeout=5)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, app


def keyed_publish(channel: str, key: bytes) -> bytes:
    request = publish_request(channel, b'{"n":1}')
    return request.replace(b"Host: x\r\n", b"Host: x\r\nIdempotency-Key: %b\r\n" % key)


async def test_an_idempotent_retry_served_by_our_protocol_publishes_once(state):
    publisher, transport, app = connect_counting(state)
    answers = []
    for _ in range(2):
        publisher.data_received(keyed_publish("idem", b"order-1"))
        await until(lambda: transport.buffer.endswith(b"}"))
        answers.append(transport.take().removeprefix(b"HTTP/1.1 "))
    assert [a[:3] for a in answers] == [b"202", b"202"]
    first, retry = (orjson.loads(a.split(b"\r\n\r\n", 1)[1]) for a in answers)
    assert first == retry and len(await state["broker"].history("idem", "0-0", 10)) == 1
    publisher.data_received(keyed_publish("idem", b"no,commas"))
    await until(lambda: transport.buffer.endswith(b"}"))
    answer = transport.take()
    assert answer.startswith(b"HTTP/1.1 400 ") and b"invalid_idempotency_key" in answer
    assert app.calls == 0  # every answer came from the hot path


async def test_rate_limits_apply_on_our_protocol_before_the_stream_slot():
    settings = Settings(redis_url=None, rate_publish=0.01, rate_publish_burst=1,
                        rate_connect=0.01, rate_connect_burst=1)  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        state["app"] = app
        publisher, transport, counting = connect_counting(state)
        answers = b""
        for _ in range(2):
            publisher.data_received(publish_request("rl", b"{}"))
            await until(lambda: transport.buffer.endswith(b"}"))
            answers += transport.take()
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answers) == [b"202", b"429"]
        assert b"retry-after: 100\r\n" in answers.lower() and counting.calls == 0
        first, _ = connect(state)
        first.data_received(b"GET /subscribe/rl HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: state["hub"].subscriptions)
        second, second_transport = connect(state)
        second.data_received(b"GET /subscribe/rl HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: b"rate_limited" in second_transport.buffer)
        assert second_transport.take().startswith(b"HTTP/1.1 429 ")
        assert state["slots"].in_use == 1 and len(state["hub"].subscriptions) == 1
        first.connection_lost(None)
