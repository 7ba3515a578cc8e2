"""Publish and subscribe, both dialects, against a real gateway and redis-server."""

from __future__ import annotations

import asyncio

import pytest

from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_publish_returns_the_id_and_subscriber_gets_every_field(hub):
    topic = unique()
    async with subscribe(hub.url, [("topic", topic)]) as stream:
        fields = {"data": "line one\nline two", "id": "urn:test:1", "type": "book", "retry": "4000"}
        answer = await publish(hub.url, topic=topic, **fields)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text == "urn:test:1"
        event = await stream.next_event()
    assert event is not None
    assert (event.id, event.event, event.data) == ("urn:test:1", "book", "line one\nline two")
    assert stream.parser.retry == 4000
    assert 'rel="mercure"' in stream.response.headers["link"]


async def test_generated_ids_are_uuid_urns(hub):
    answer = await publish(hub.url, topic=unique(), data="x")
    assert answer.status_code == 200 and answer.text.startswith("urn:uuid:")


async def test_uri_template_selector_matches_only_its_expansions(hub):
    root = unique()
    async with subscribe(hub.url, [("topic", root + "/books/{id}")]) as stream:
        await publish(hub.url, topic=root + "/books/1/chapters", data="no", id=unique("urn:x"))
        await publish(hub.url, topic=root + "/authors/1", data="no")
        await publish(hub.url, topic=root + "/books/42", data="yes")
        event = await stream.next_event()
    assert event is not None and event.data == "yes"


async def test_wildcard_and_alternate_topics(hub):
    root = unique()
    async with (
        subscribe(hub.url, [("topic", root + "/alt")]) as alternate,
        subscribe(hub.url, [("topic", "*")]) as everything,
    ):
        await publish(hub.url, topic=[root + "/canonical", root + "/alt"], data="both")
        assert (await alternate.next_event()).data == "both"
        seen = await everything.next_event()
        while seen.data != "both":  # other tests' updates share the log
            seen = await everything.next_event()


async def test_draft08_exact_and_urlpattern_matchers(hub):
    root = unique()
    params = [("match", root + "/exact"), ("match_urlpattern", root + "/books/:id")]
    async with subscribe(hub.url, params) as stream:
        await publish(hub.url, topic=root + "/exact/not", data="no")
        await publish(hub.url, topic=root + "/books/7/no", data="no")
        await publish(hub.url, topic=root + "/books/7", data="pattern")
        await publish(hub.url, topic=root + "/exact", data="exact")
        events = await stream.collect(2)
    assert [event.data for event in events] == ["pattern", "exact"]


async def test_empty_data_is_still_dispatched(hub):
    topic = unique()
    async with subscribe(hub.url, [("topic", topic)]) as stream:
        await publish(hub.url, topic=topic)
        event = await stream.next_event()
    assert event is not None and event.data == ""


async def test_unknown_match_parameter_is_refused(hub):
    async with client_for_loopback() as client:
        answer = await client.get(hub.url + HUB, params={"match_regex": "x"})
    assert answer.status_code == 400 and answer.json()["error"] == "unknown_matcher"


async def test_keepalives_reach_a_subscriber_while_the_log_is_busy_with_updates_it_cannot_see(hub):
    """Every Mercure update is an entry of the one log, so the log is busy whenever anyone
    publishes; a subscriber that sees none of it is idle all the same (keepalive every 1 s)."""
    seen, hidden = unique(), unique()
    async with subscribe(hub.url, [("topic", seen)]) as stream:
        for n in range(14):  # ~3.5 s of updates to another topic
            await publish(hub.url, topic=hidden, data=str(n))
            await asyncio.sleep(0.25)
        await publish(hub.url, topic=seen, data="mine")
        event = await stream.next_event()
    assert event is not None and event.data == "mine"
    assert stream.parser.comments.count("keepalive") >= 2
