"""Active subscriptions across replicas: events on start and end, the API answering for all
replicas together, and a SIGKILLed replica's subscriptions ended and gone within the TTL."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import pytest

from tests.mercure.conftest import SUBSCRIBER_KEY, legacy_token
from tests.mercure.support import HUB, client_for_loopback, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TTL = "1.5"
WATCHER = legacy_token(SUBSCRIBER_KEY, subscribe=[HUB + "/subscriptions{/topic}{/subscriber}"])
EVENTS = [("topic", HUB + "/subscriptions{/topic}{/subscriber}")]


def _env() -> dict[str, str]:
    return {"GATEWAY_MERCURE_SUBSCRIPTIONS": "true", "GATEWAY_MERCURE_SUBSCRIPTIONS_TTL": TTL}


async def _api(url: str, path: str = "", token: str = WATCHER):
    async with client_for_loopback() as client:
        return await client.get(
            url + HUB + "/subscriptions" + path, headers={"authorization": f"Bearer {token}"}
        )


async def _next_doc(stream, topic: str) -> dict:
    """The next subscription event about ``topic`` (other tests' may interleave)."""
    while True:
        event = await stream.next_event(timeout=15)
        assert event is not None
        doc = json.loads(event.data)
        if doc["topic"] == topic:
            return doc


async def test_events_and_api_across_replicas_and_a_sigkilled_one(own_redis, start_hub):
    first = start_hub(own_redis.url, **_env())
    second = start_hub(own_redis.url, **_env())
    doomed = start_hub(own_redis.url, **_env())
    topic = unique()
    payload_token = legacy_token(SUBSCRIBER_KEY, subscribe=[topic], payload={"user": "ada"})
    async with subscribe(first.url, EVENTS, token=WATCHER) as watcher:
        async with subscribe(second.url, [("topic", topic)], token=payload_token):
            started = await _next_doc(watcher, topic)
            assert started["active"] is True and started["payload"] == {"user": "ada"}
            assert started["type"] == "Subscription" and started["@context"]
            subscriber = started["subscriber"]
            expected_id = (
                f"{HUB}/subscriptions/{quote(topic, safe='')}/{quote(subscriber, safe='')}"
            )
            assert started["id"] == expected_id
            listing = (await _api(first.url)).json()  # asked on the other replica
            assert listing["type"] == "Subscriptions" and "lastEventID" in listing
            assert [d["id"] for d in listing["subscriptions"] if d["topic"] == topic] == [
                expected_id
            ]
            one = await _api(first.url, started["id"][len(HUB + "/subscriptions") :])
            assert one.status_code == 200 and one.json()["subscriber"] == subscriber
            assert one.headers["content-type"].startswith("application/ld+json")
        ended = await _next_doc(watcher, topic)
        assert ended["active"] is False and ended["subscriber"] == subscriber

        killed_topic = unique()
        async with subscribe(doomed.url, [("topic", killed_topic)], token=payload_token):
            assert (await _next_doc(watcher, killed_topic))["active"] is True
            doomed.kill()  # SIGKILL: no goodbye from it
            began = time.monotonic()
            ended = await _next_doc(watcher, killed_topic)
        assert ended["active"] is False
        assert time.monotonic() - began < 3 * float(TTL) + 3
        listing = (await _api(second.url)).json()
        assert not [d for d in listing["subscriptions"] if d["topic"] == killed_topic]
    await asyncio.sleep(0)


async def test_api_needs_a_token_allowed_for_the_path(own_redis, start_hub):
    hub = start_hub(own_redis.url, **_env())
    assert (
        await _api(hub.url, token=legacy_token(SUBSCRIBER_KEY, subscribe=["x"]))
    ).status_code == 403
    async with client_for_loopback() as client:
        assert (await client.get(hub.url + HUB + "/subscriptions")).status_code == 401
    assert (await _api(hub.url, "/nothing/here")).status_code == 404
