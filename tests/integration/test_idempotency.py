"""Idempotent publish across replicas: two gateways on one real Redis, concurrent retries of the
same Idempotency-Key on both publish once, and every retry gets the same ids."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from publisher import AsyncPublisher, InvalidMessage, Publisher
from tests.support.gateway_process import GatewayProcess
from tests.support.sse import sse_connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def replicas(redis_server, tmp_path_factory):
    logs = tmp_path_factory.mktemp("idempotency")
    gateways = [
        GatewayProcess(
            redis_server.url, log_path=logs / f"gateway-{n}.log", env={"GATEWAY_AUTH": "off"}
        ).start()
        for n in range(2)
    ]
    yield gateways
    for gateway in gateways:
        gateway.stop()


async def _retry_storm(
    replicas: list[GatewayProcess], channel: str, key: str, body: bytes, ctype: str, n: int
) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=10) as http:
        return await asyncio.gather(
            *(
                http.post(
                    f"{replicas[i % 2].url}/publish/{channel}",
                    content=body,
                    headers={"content-type": ctype, "idempotency-key": key},
                )
                for i in range(n)
            )
        )


async def test_concurrent_retries_on_two_replicas_publish_once(replicas, redis_server) -> None:
    async with sse_connect(replicas[1].url + "/subscribe/idem1") as stream:
        await stream.next_frame()
        answers = await _retry_storm(replicas, "idem1", "pay-1", b'{"n":1}', "application/json", 20)
        assert {a.status_code for a in answers} == {202}
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1
        first = await stream.next_event()
        assert first is not None and first.id in ids
        with pytest.raises(TimeoutError):  # delivered once, not 20 times
            await stream.next_event(timeout=0.5)
    assert redis_server.client().xlen("sse:stream:{idem1}") == 1


async def test_one_key_covers_an_ndjson_batch(replicas, redis_server) -> None:
    body = b'{"n":1}\n{"n":2}\n{"n":3}\n'
    answers = await _retry_storm(replicas, "idem2", "batch-1", body, "application/x-ndjson", 10)
    batches = {tuple(a.json()["ids"]) for a in answers}
    assert len(batches) == 1 and len(next(iter(batches))) == 3
    assert redis_server.client().xlen("sse:stream:{idem2}") == 3


async def test_the_library_over_http_and_over_redis_shares_the_key(replicas, redis_server) -> None:
    over_http = Publisher(replicas[0].url)
    first = await asyncio.to_thread(over_http.publish, "idem3", {"a": 1}, idempotency_key="k-3")
    again = await asyncio.to_thread(over_http.publish, "idem3", {"a": 1}, idempotency_key="k-3")
    async with AsyncPublisher(redis_server.url) as direct:
        from_redis = await direct.publish("idem3", {"a": 1}, idempotency_key="k-3")
        other = await direct.publish("idem3", {"a": 1}, idempotency_key="k-4")
    assert first == again == from_redis != other
    assert redis_server.client().xlen("sse:stream:{idem3}") == 2


def test_the_key_is_remembered_for_the_configured_window(replicas, redis_server) -> None:
    answer = httpx.post(
        replicas[0].url + "/publish/idem4", content=b"1", headers={**JSON, "idempotency-key": "w"}
    )
    assert answer.status_code == 202
    ttl = redis_server.client().pttl("sse:idem:{idem4}:w")
    assert 290_000 < ttl <= 300_000  # GATEWAY_IDEMPOTENCY_TTL's default, 300 s


@pytest.mark.parametrize("key", ["", "has space", "{tag}", "x" * 129, "a,b", "ключ"])
def test_bad_keys_are_a_clear_400_and_publish_nothing(replicas, redis_server, key) -> None:
    headers = [(b"content-type", b"application/json"), (b"idempotency-key", key.encode())]
    answer = httpx.post(replicas[0].url + "/publish/idem5", content=b"1", headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_idempotency_key"
    assert redis_server.client().xlen("sse:stream:{idem5}") == 0


def test_the_library_refuses_a_bad_key_before_sending(replicas) -> None:
    with pytest.raises(InvalidMessage):
        Publisher(replicas[0].url).publish("idem6", 1, idempotency_key="has space")


@pytest.mark.parametrize("via", ["redis", "http"])
def test_sse_publish_command_takes_an_idempotency_key(replicas, redis_server, via) -> None:
    url = redis_server.url if via == "redis" else replicas[1].url
    command = [sys.executable, "-m", "publisher.cli", f"idem7{via}", "1", "--url", url,
               "--idempotency-key", "cli-1"]  # fmt: skip
    runs = [subprocess.run(command, capture_output=True, text=True, timeout=30) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout != ""
    assert redis_server.client().xlen(f"sse:stream:{{idem7{via}}}") == 1
