"""Every bad request gets a clear 4xx with a JSON body, and breaks nothing for anyone else."""

from __future__ import annotations

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def small_gateway(redis_server, tmp_path_factory):
    gateway = GatewayProcess(
        redis_server.url,
        log_path=tmp_path_factory.mktemp("bad-input") / "gateway.log",
        env={
            "GATEWAY_MAX_BODY_BYTES": "1024",
            "GATEWAY_MAX_BATCH_MESSAGES": "10",
            "GATEWAY_MAX_CHANNELS_PER_STREAM": "4",
        },
    ).start()
    yield gateway
    gateway.stop()


CASES = [
    ("POST", "/publish/ok", {"content": b"{oops", "headers": JSON}, 400, "invalid_json"),
    ("POST", "/publish/ok", {"content": b"", "headers": JSON}, 400, "empty_body"),
    ("POST", "/publish/ok", {"content": b"\xc3\x28", "headers": JSON}, 400, "invalid_json"),
    ("POST", "/publish/ok", {"content": b"1", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("POST", "/publish/ok", {"content": b"1"}, 415, "unsupported_media_type"),
    ("POST", "/publish/bad%20name", {"content": b"1", "headers": JSON}, 400, "invalid_channel"),
    ("POST", "/publish/" + "x" * 129, {"content": b"1", "headers": JSON}, 400, "invalid_channel"),
    ("POST", "/publish/ok?event=bad%0Aevent", {"content": b"1", "headers": JSON}, 400,
     "invalid_event"),
    ("POST", "/publish/ok", {"content": b'"' + b"x" * 2000 + b'"', "headers": JSON}, 413,
     "body_too_large"),
    ("POST", "/publish/ok", {"content": b"1\n" * 11, "headers": NDJSON}, 413, "batch_too_large"),
    ("POST", "/publish/ok", {"content": b"1\n{no\n", "headers": NDJSON}, 400, "invalid_json"),
    ("GET", "/subscribe/bad%20name", {}, 400, "invalid_channel"),
    ("GET", "/subscribe", {}, 400, "no_channel"),
    ("GET", "/subscribe?channel=a&channel=%2A", {}, 400, "invalid_channel"),
    ("GET", "/subscribe?" + "&".join(f"channel=c{n}" for n in range(5)), {}, 400,
     "too_many_channels"),
    ("GET", "/nope", {}, 404, "not_found"),
    ("DELETE", "/publish/ok", {}, 405, "method_not_allowed"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), CASES)
async def test_bad_input_is_a_clear_client_error(small_gateway, method, path, kwargs, status, code):
    async with httpx.AsyncClient(base_url=small_gateway.url) as http:
        reply = await http.request(method, path, **kwargs)
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == code and body["detail"]


async def test_chunked_body_over_the_limit_is_cut_off(small_gateway):
    async def chunks():
        for _ in range(10):
            yield b"x" * 512

    async with httpx.AsyncClient(base_url=small_gateway.url) as http:
        reply = await http.post("/publish/ok", content=chunks(), headers=JSON)
    assert reply.status_code == 413 and reply.json()["error"] == "body_too_large"


async def test_bad_requests_do_not_disturb_other_clients(small_gateway):
    async with sse_connect(small_gateway.url + "/subscribe/calm") as stream:
        await stream.next_frame()
        async with httpx.AsyncClient(base_url=small_gateway.url) as http:
            for method, path, kwargs, _, _ in CASES:
                await http.request(method, path, **kwargs)
            good = await http.post("/publish/calm", json={"still": "fine"})
        event = await stream.next_event()
    assert (event.id, event.json()) == (good.json()["id"], {"still": "fine"})
