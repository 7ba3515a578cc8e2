"""The hub on the embedded store (no Redis URL): the same scripts and records on fakeredis."""

from __future__ import annotations

import json

import pytest

from tests.mercure.conftest import SUBSCRIBER_KEY, hub_env, legacy_token
from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_publish_resume_and_subscriptions_on_the_embedded_store(start_gateway):
    env = hub_env(GATEWAY_MERCURE_ANONYMOUS="true", GATEWAY_MERCURE_SUBSCRIPTIONS="true")
    hub = start_gateway(None, env=env)
    topic = unique()
    first = (await publish(hub.url, topic=topic, data="1")).text
    await publish(hub.url, topic=topic, data="2")
    async with subscribe(hub.url, [("topic", topic)], last_event_id=first) as stream:
        assert (await stream.next_event()).data == "2"
        token = legacy_token(SUBSCRIBER_KEY, subscribe=[HUB + "/subscriptions{/rest*}"])
        async with client_for_loopback() as client:
            answer = await client.get(
                hub.url + HUB + "/subscriptions", headers={"authorization": f"Bearer {token}"}
            )
    assert answer.status_code == 200, answer.text
    topics = [doc["topic"] for doc in json.loads(answer.text)["subscriptions"]]
    assert topics == [topic]
