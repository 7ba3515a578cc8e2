"""Last-Event-ID with publisher-chosen ids: exact resume on any replica, earliest, unknown ids."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.mercure.conftest import PUBLISH_ALL
from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PUBLISHERS = 4
UPDATES = 2000  # in all, from PUBLISHERS concurrent publishers spread over both replicas


async def test_resume_after_a_publisher_id_with_header_or_query(hub):
    topic = unique()
    ids = [unique("urn:test:resume") for _ in range(5)]
    for index, id_ in enumerate(ids):
        assert (await publish(hub.url, topic=topic, data=str(index), id=id_)).status_code == 200
    async with subscribe(hub.url, [("topic", topic)], last_event_id=ids[1]) as stream:
        assert stream.response.headers["last-event-id"] == ids[1]
        assert stream.response.headers["mercure-last-event-id"] == ids[1]
        events = await stream.collect(3)
    assert [event.id for event in events] == ids[2:]
    query = [("topic", topic), ("lastEventID", ids[0])]
    async with subscribe(hub.url, query, last_event_id=ids[3]) as stream:  # the header wins
        assert stream.response.headers["last-event-id"] == ids[3]
        assert [event.id for event in await stream.collect(1)] == ids[4:]
    async with subscribe(hub.url, [("topic", topic), ("last_event_id", ids[2])]) as stream:
        assert [event.id for event in await stream.collect(2)] == ids[3:]  # draft-08 spelling


async def test_unknown_id_is_live_only_and_answered_earliest(hub):
    topic = unique()
    await publish(hub.url, topic=topic, data="before")
    async with subscribe(hub.url, [("topic", topic)], last_event_id="urn:never:sent") as stream:
        assert stream.response.headers["last-event-id"] == "earliest"
        await publish(hub.url, topic=topic, data="after")
        assert (await stream.next_event()).data == "after"


async def test_earliest_replays_all_history_on_another_replica(replicas):
    first, second = replicas
    topic = unique()
    for index in range(20):
        await publish(first.url, topic=[unique(), topic], data=str(index))
    await publish(first.url, topic=unique(), data="someone else's")
    query = [("topic", topic), ("lastEventID", "earliest")]
    async with subscribe(second.url, query) as stream:
        assert stream.response.headers["last-event-id"] == "earliest"
        events = await stream.collect(20, timeout=20)
    assert [event.data for event in events] == [str(n) for n in range(20)]


async def _publish(urls: list[str], topic: str, publisher: int, started: asyncio.Event) -> None:
    await started.wait()
    async with client_for_loopback() as client:
        headers = {"authorization": f"Bearer {PUBLISH_ALL}"}
        for seq in range(UPDATES // PUBLISHERS):
            data = f"{publisher}:{seq}"
            form = {"topic": topic, "data": data, "id": f"urn:seq:{data}:{topic}"}
            answer = await client.post(urls[seq % 2] + HUB, data=form, headers=headers)
            assert answer.status_code == 200, answer.text


async def _read_with_reconnects(urls: list[str], topic: str, started: asyncio.Event) -> list[str]:
    """Hang up after a random number of updates and resume on the other replica with the last
    id, as a browser would, until every update arrived."""
    rng = random.Random(13)
    received: list[str] = []
    last_id: str | None = None
    connections = 0
    while len(received) < UPDATES:
        url = urls[connections % 2]
        connections += 1
        async with subscribe(url, [("topic", topic)], last_event_id=last_id) as stream:
            started.set()
            for _ in range(rng.randint(50, 400)):
                if len(received) == UPDATES:
                    break
                event = await stream.next_event(timeout=15)
                assert event is not None, "the stream ended"
                received.append(event.data)
                last_id = event.id
    assert connections > 5
    return received


async def test_exact_resume_across_two_replicas_while_publishing(replicas):
    urls = [gateway.url for gateway in replicas]
    topic = unique()
    started = asyncio.Event()
    publishers = [_publish(urls, topic, n, started) for n in range(PUBLISHERS)]
    publishing = asyncio.gather(*publishers)
    received = await _read_with_reconnects(urls, topic, started)
    await publishing
    assert len(received) == len(set(received)) == UPDATES  # 0 duplicated, so 0 lost
    for publisher in range(PUBLISHERS):  # and each publisher's updates in its order
        mine = [int(item.split(":")[1]) for item in received if item.startswith(f"{publisher}:")]
        assert mine == list(range(UPDATES // PUBLISHERS))
