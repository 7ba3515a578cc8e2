"""The hub on Redis Cluster: the log, its id index and the subscription records each share one
hash tag, so every script and transaction stays in one slot; updates are published through the
per-shard publish pipe and announced on the log's shard channel (sharded pub/sub). (Sentinel is
standalone Redis behind a lookup: it passes the same test, but costs 30 s of this directory's
budget; not run here.)"""

from __future__ import annotations

import json

import pytest

from tests.mercure.conftest import SUBSCRIBER_KEY, hub_env, legacy_token
from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique
from tests.support.topologies import ClusterSetup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def topology(tmp_path):
    setup = ClusterSetup(tmp_path).start()
    yield setup
    setup.close()


async def test_publish_resume_and_subscriptions(topology, start_gateway):
    env = hub_env(GATEWAY_MERCURE_ANONYMOUS="true", GATEWAY_MERCURE_SUBSCRIPTIONS="true")
    first, second = (start_gateway(topology.url, env=env) for _ in range(2))
    topic = unique()
    ids = [(await publish(first.url, topic=topic, data=str(n))).text for n in range(3)]
    async with subscribe(second.url, [("topic", topic)], last_event_id=ids[0]) as stream:
        assert [event.data for event in await stream.collect(2)] == ["1", "2"]
        # Live across replicas: the indexed publish's SPUBLISH twin, on the log's shard.
        live = (await publish(first.url, topic=topic, data="3")).text
        assert [(e.id, e.data) for e in await stream.collect(1)] == [(live, "3")]
        token = legacy_token(SUBSCRIBER_KEY, subscribe=[HUB + "/subscriptions{/rest*}"])
        async with client_for_loopback() as client:
            answer = await client.get(
                first.url + HUB + "/subscriptions", headers={"authorization": f"Bearer {token}"}
            )
    assert answer.status_code == 200, answer.text
    assert [doc["topic"] for doc in json.loads(answer.text)["subscriptions"]] == [topic]
