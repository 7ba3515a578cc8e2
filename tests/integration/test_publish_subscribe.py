"""Publish -> receive through real processes: HTTP, the publisher library, raw PUBLISH, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from publisher import AsyncPublisher, InvalidChannel, InvalidMessage, Publisher, Rejected
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


async def _post(url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, **kwargs)


async def test_stream_headers_and_preamble(gateway):
    async with sse_connect(gateway.url + "/subscribe/pre") as stream:
        headers = stream.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-store"
        assert headers["x-accel-buffering"] == "no"
        first = await stream.next_frame()
        assert stream.parser.retry == 3000  # the default hint
        assert first.data is None and first.id == "0-0"  # id-only frame: the resume position


async def test_http_json_and_ndjson_reach_the_subscriber(gateway):
    async with sse_connect(gateway.url + "/subscribe/http1") as stream:
        await stream.next_frame()
        one = await _post(gateway.url + "/publish/http1", json={"sku": "A1", "qty": 2})
        assert one.status_code == 202
        assert one.json() == {"channel": "http1", "id": one.json()["id"]}
        batch = await _post(
            gateway.url + "/publish/http1?event=restock",
            content=b'{"n":1}\n{"n":2,"s":"line\\nbreak"}\n',
            headers={"content-type": "application/x-ndjson"},
        )
        assert batch.status_code == 202
        ids = batch.json()["ids"]
        events = await stream.collect(3)
    assert [(e.id, e.event, e.json()) for e in events] == [
        (one.json()["id"], "message", {"sku": "A1", "qty": 2}),
        (ids[0], "restock", {"n": 1}),
        (ids[1], "restock", {"n": 2, "s": "line\nbreak"}),
    ]


async def test_publisher_library_sync_async_and_http(gateway, redis_server):
    async with sse_connect(gateway.url + "/subscribe/lib") as stream:
        await stream.next_frame()
        sync_id = await asyncio.to_thread(
            Publisher(redis_server.url).publish, "lib", {"via": "sync"}
        )
        async with AsyncPublisher(redis_server.url) as async_pub:
            async_id = await async_pub.publish("lib", {"via": "async"}, event="e1")
        http_ids = await asyncio.to_thread(
            Publisher(gateway.url).publish_many, "lib", [{"via": "http"}, {"via": "http2"}]
        )
        events = await stream.collect(4)
    assert [e.id for e in events] == [sync_id, async_id, *http_ids]
    assert [e.json()["via"] for e in events] == ["sync", "async", "http", "http2"]
    assert events[1].event == "e1"


async def test_publisher_over_http_surfaces_rejections(redis_server, start_gateway):
    # A body small enough to sit whole in the socket buffers: a server that answers 413 from
    # Content-Length and closes at once (hypercorn does; ours lingers) cannot cut the upload
    # short and turn the answer into a broken pipe (a 2 MiB body did, under load).
    gateway = start_gateway(redis_server.url, env={"GATEWAY_MAX_BODY_BYTES": "1024"})
    with pytest.raises(Rejected) as caught:
        await asyncio.to_thread(Publisher(gateway.url).publish, "lib", "x" * 8192)
    assert caught.value.status == 413
    assert caught.value.body["error"] == "body_too_large"


def test_publisher_validates_before_any_io():
    with pytest.raises(InvalidMessage):
        Publisher("http://127.0.0.1:9").publish("lib", 1, event="gateway.x")
    with pytest.raises(InvalidChannel):
        Publisher("http://127.0.0.1:9").publish("no spaces", 1)


async def test_raw_redis_publish_reaches_subscribers_with_the_current_id(gateway, redis_server):
    async with sse_connect(gateway.url + "/subscribe/raw") as stream:
        await stream.next_frame()
        durable = (await _post(gateway.url + "/publish/raw", json=1)).json()["id"]
        await stream.next_event()
        redis_server.client().publish("raw", '{"raw": "yes"}')
        event = await stream.next_event()
    assert event.json() == {"raw": "yes"}
    assert event.id == durable  # not replayable: the resume position does not move


async def test_sse_publish_command(gateway, redis_server):
    async with sse_connect(gateway.url + "/subscribe/cli") as stream:
        await stream.next_frame()
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "publisher.cli",
                "cli",
                '{"from": "cli"}',
                "--url",
                redis_server.url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        event = await stream.next_event()
    assert event.id == result.stdout.strip() and event.json() == {"from": "cli"}


async def test_multi_channel_stream_tells_channels_apart(gateway):
    url = gateway.url + "/subscribe?channel=m1&channel=m2&channel=m1"
    async with sse_connect(url) as stream:
        first = await stream.next_frame()
        assert first.id == "m1=0-0,m2=0-0"  # de-duplicated, in order
        a = (await _post(gateway.url + "/publish/m2", json="to m2")).json()["id"]
        b = (await _post(gateway.url + "/publish/m1", json="to m1")).json()["id"]
        events = await stream.collect(2)
    assert [(e.channel, e.json()) for e in events] == [("m2", "to m2"), ("m1", "to m1")]
    assert events[0].id == f"m2={a},m1=0-0"
    assert events[1].id == f"m1={b},m2={a}"


async def test_payloads_cannot_inject_sse_fields(gateway, redis_server):
    async with sse_connect(gateway.url + "/subscribe/inj") as stream:
        await stream.next_frame()
        evil = {"data": "x\n\nid: 999-0\nevent: admin\ndata: pwned\r\rretry: 1"}
        await _post(gateway.url + "/publish/inj", json=evil)
        redis_server.client().publish("inj", '{"a":\n"b"}')
        events = await stream.collect(2)
    assert [e.json() for e in events] == [evil, {"a": "b"}]
    assert all(e.event == "message" for e in events)
    assert stream.parser.retry == 3000


async def test_retry_hint_and_keepalives_on_the_wire(redis_server, start_gateway):
    gateway = start_gateway(
        redis_server.url, env={"GATEWAY_RETRY_MS": "1234", "GATEWAY_KEEPALIVE_INTERVAL": "0.2"}
    )
    async with sse_connect(gateway.url + "/subscribe/ka") as stream:
        await stream.next_frame()
        assert stream.parser.retry == 1234
        with pytest.raises(TimeoutError):
            await stream.next_frame(timeout=1.0)  # nothing dispatched, but comments arrive
        assert stream.parser.comments.count("keepalive") >= 3
