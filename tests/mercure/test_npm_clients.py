"""Mercure client libraries from npm, used unchanged against two gateway replicas: the ``mercure``
package's ``Publisher`` publishes to one replica, ``@microsoft/fetch-event-source`` (the client
Mercure's documentation recommends for sending the token in the ``Authorization`` header)
subscribes on the other. Anonymous subscribers are off, so the subscriber's header is what lets
it in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from tests.mercure.browser import NodeDriver
from tests.mercure.hubs import HUB, PUBLISH_ALL, Replicas, require_node_tools, subscriber_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    require_node_tools()
    pair = Replicas(tmp_path_factory.mktemp("mercure-npm"), anonymous=False)
    try:
        yield pair.start()
    finally:
        pair.stop()


async def test_npm_publisher_and_subscriber_libraries_round_trip_across_replicas(
    replicas: Replicas,
) -> None:
    a, b = replicas.urls
    run = f"https://library.test/{uuid.uuid4().hex[:10]}"
    book = f"{run}/books/1"
    updates = [
        {"topics": [book, f"{run}/shelves/3"], "data": '{"title": "Dune"}', "id": f"{run}:1",
         "type": "book.updated"},
        {"topics": [f"{run}/authors/9", f"{run}/books/2"], "data": "two\nlines", "id": f"{run}:2"},
        {"topics": [f"{run}/authors/9"], "data": "not for this subscriber", "id": f"{run}:3"},
        {"topics": [book], "data": "last", "id": f"{run}:4"},
    ]  # fmt: skip
    publisher = urlsplit(a)
    client = NodeDriver(
        "npm-clients.mjs",
        subscribeUrl=f"{b}{HUB}?{urlencode({'topic': f'{run}/books/{{id}}'})}",
        subscriberToken=subscriber_token(subscribe=[f"{run}/books/{{id}}"]),
        publisher={"host": publisher.hostname, "port": publisher.port, "path": HUB,
                   "jwt": PUBLISH_ALL},
        updates=updates, expect=3,
    )  # fmt: skip
    await client.start()
    try:
        await client.wait_for(lambda r: r["type"] == "end", timeout=30, what="three updates")
    finally:
        await client.close()
    assert not client.matching(lambda r: r["type"] == "error"), client.transcript()
    [opened] = client.matching(lambda r: r["type"] == "open")
    assert opened["status"] == 200
    assert f'<{b}{HUB}>; rel="mercure"' in (opened["link"] or ""), opened
    published = client.matching(lambda r: r["type"] == "published")
    assert [(r["id"], r["answer"]) for r in published] == [(u["id"], u["id"]) for u in updates]
    messages = client.matching(lambda r: r["type"] == "message")
    got = [(r["id"], r["event"], r["data"]) for r in messages]
    assert got == [
        (f"{run}:1", "book.updated", '{"title": "Dune"}'),
        (f"{run}:2", "", "two\nlines"),
        (f"{run}:4", "", "last"),
    ]
