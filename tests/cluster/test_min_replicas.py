"""GATEWAY_PUBLISH_MIN_REPLICAS on a standalone Redis: acknowledged only once replicas hold it."""

from __future__ import annotations

import time

import httpx
import pytest

from publisher import Publisher
from publisher.errors import BackendUnavailable
from tests.cluster.feeds import eventually
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_publish_waits_for_its_replicas_or_answers_503(own_redis, start_gateway):
    gateway = start_gateway(own_redis.url, env={"GATEWAY_PUBLISH_MIN_REPLICAS": "1"})
    async with httpx.AsyncClient(timeout=10) as http:
        started = time.monotonic()
        reply = await http.post(gateway.url + "/publish/durable", json={"n": 1})
        took = time.monotonic() - started
        assert reply.status_code == 503, reply.text  # no replica: not acknowledged
        assert reply.json()["error"] == "unavailable" and int(reply.headers["retry-after"]) >= 1
        assert took < 2.0 + 0.5  # within GATEWAY_REDIS_TIMEOUT (2 s)
        with pytest.raises(BackendUnavailable, match="0 of 1 replicas"):
            Publisher(own_redis.url, min_replicas=1, timeout=1.0).publish("durable", 1)

        own_redis.client().config_set("repl-diskless-sync-delay", 0)  # sync the replica now
        replica = RedisServer()
        replica.extra_args = ["--replicaof", "127.0.0.1", str(own_redis.port)]
        replica.start()
        try:
            # Both sides: the replica's link is up a moment before the master counts it as
            # online (and only then does WAIT count its acknowledgements).
            def synced() -> bool:
                link = replica.client().info("replication")["master_link_status"] == "up"
                slave = own_redis.client().info("replication").get("slave0") or {}
                return link and slave.get("state") == "online"

            await eventually(synced, 10, "the replica to sync")
            # The first WAIT after a full sync can outlast its budget on a loaded machine (the
            # replica is still settling in); from the first acknowledged publish on, every one is.
            first: list[int] = []

            async def acknowledged() -> bool:
                reply = await http.post(gateway.url + "/publish/durable", json={"n": -1})
                first.append(reply.status_code)
                return reply.status_code == 202

            for _ in range(20):
                if await acknowledged():
                    break
            assert first[-1] == 202 and set(first) <= {202, 503}, first
            replies = [
                await http.post(gateway.url + "/publish/durable", json={"n": n}) for n in range(20)
            ]
            assert [r.status_code for r in replies] == [202] * 20
            ids = [r.json()["id"] for r in replies]
            with Publisher(own_redis.url, min_replicas=1) as library:
                ids.append(library.publish("durable", {"n": "library"}))
            held = {i.decode() for i, _ in replica.client().xrange("sse:stream:{durable}")}
            assert set(ids) <= held  # acknowledged means the replica has it
        finally:
            replica.close()
