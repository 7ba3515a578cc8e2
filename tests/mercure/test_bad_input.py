"""Bad Mercure input gets a clear 4xx with our JSON error body, and nothing is published."""

from __future__ import annotations

import pytest

from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"data": "no topic"}, 400, "missing_topic"),
        ({"topic": "T", "id": "#fragment"}, 400, "invalid_id"),
        ({"topic": "T", "id": "earliest"}, 400, "invalid_id"),
        ({"topic": "T", "id": "a\nb"}, 400, "invalid_id"),
        ({"topic": "T", "retry": "10s"}, 400, "invalid_retry"),
        ({"topic": "T", "type": "mercure"}, 400, "invalid_type"),
        ({"topic": "T", "type": "a\rb"}, 400, "invalid_type"),
        ({"topic": "*"}, 400, "reserved_topic"),
        ({"topic": "/.well-known/mercure/subscriptions/x/y"}, 400, "reserved_topic"),
        ({"topic": "https://h.test/.well-known/./mercure/subscriptions"}, 400, "reserved_topic"),
        ({"topic": ["T"] * 65}, 413, "too_many_topics"),
        ({"topic": "T", "data": "x" * (1 << 20)}, 413, "body_too_large"),
    ],
)
async def test_bad_publish_is_refused_and_not_dispatched(hub, fields, status, code):
    topic = unique()
    fields = {name: _with_topic(value, topic) for name, value in fields.items()}
    async with subscribe(hub.url, [("topic", topic)]) as stream:
        answer = await publish(hub.url, **fields)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == code
        await publish(hub.url, topic=topic, data="after")
        assert (await stream.next_event()).data == "after"


async def test_publish_must_be_a_form(hub):
    async with client_for_loopback() as client:
        answer = await client.post(hub.url + HUB, json={"topic": "x"})
    assert answer.status_code in (401, 415)  # no token: 401 before the body is even read


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([], "missing_topic"),
        ([("lastEventID", "x")], "missing_topic"),
        ([("match_regexp", "a.*")], "unknown_matcher"),
        ([("MATCH", "a")], "unknown_matcher"),
        ([("match_urlpattern", "https://[")], "invalid_selector"),
        ([("topic", "a\x00b")], "invalid_selector"),
        ([("topic", "x" * 3000)], "invalid_selector"),
        ([("topic", str(n)) for n in range(65)], "too_many_topics"),
    ],
)
async def test_bad_subscribe_is_400(hub, params, code):
    async with client_for_loopback() as client:
        answer = await client.get(hub.url + HUB, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == code


def _with_topic(value, topic):
    if isinstance(value, list):
        return [topic if item == "T" else item for item in value]
    return topic if value == "T" else value
