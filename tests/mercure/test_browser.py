"""The Mercure hub as a browser sees it: headless Debian Chromium, showing a page served on
another origin, subscribes with the browser's own ``EventSource`` to two real gateway replicas
that share one redis-server, and publishes with ``fetch``.

The ground Mercure's conformance suite covers (exact topics, several topics and selectors, URI
templates and URL patterns, ids, multi-line data, private updates kept from anonymous
subscribers), with our own words and data, and more: the event ``type``, the
``mercureAuthorization`` cookie (0.x token) and the ``authorization`` query parameter (draft-08
access token), CORS for an allowed and a refused origin, and resuming with
``Last-Event-ID`` after one replica is killed, both on the other replica (``lastEventID`` query)
and by the browser's own reconnection to the restarted replica (the header).

A negative ("never delivered") is checked without sleeping: after the update that must not
arrive, a fence update on the same subscriber's topics is published; updates reach a subscriber
in publication order, so the fence arriving first proves the other one was not sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlencode

import pytest

from tests.mercure.browser import NodeDriver, PageServer, Record
from tests.mercure.hubs import (
    HUB,
    PUBLISH_ALL,
    Replicas,
    publish,
    require_node_tools,
    subscriber_access_token,
    subscriber_token,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[str, str]]:
    """Two web applications' origins: the hub allows the first (CORS), not the second."""
    servers = [PageServer().start(), PageServer().start()]
    yield servers[0].origin, servers[1].origin
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, sites: tuple[str, str]
) -> Iterator[Replicas]:
    require_node_tools()
    pair = Replicas(tmp_path_factory.mktemp("mercure-browser"), anonymous=True, cors=sites[0])
    try:
        yield pair.start()
    finally:
        pair.stop()


@pytest.fixture
def run() -> str:
    """A fresh topic prefix: the tests share one Mercure log."""
    return f"https://shop.test/{uuid.uuid4().hex[:10]}"


async def open_page(origin: str, cookies: list[Record] | None = None) -> NodeDriver:
    return await NodeDriver("page.mjs", pageUrl=f"{origin}/app", cookies=cookies or []).start()


@pytest.fixture
async def page(sites: tuple[str, str]) -> AsyncIterator[NodeDriver]:
    driver = await open_page(sites[0])
    yield driver
    await driver.close()


def hub_url(base: str, *selectors: tuple[str, str]) -> str:
    """``selectors``: (parameter, value), e.g. ("topic", ...), ("match_urlpattern", ...)."""
    return f"{base}{HUB}?{urlencode(selectors)}"


async def open_streams(page: NodeDriver, streams: dict[str, str], **options: object) -> None:
    for name, url in streams.items():
        await page.command("open", name=name, url=url, **options)
    for name in streams:
        opened = {"stream": name, "type": "open"}
        await page.wait_for(lambda r, o=opened: r == o, what=f"{name} open")


def messages(page: NodeDriver, name: str) -> list[tuple[str, str, str]]:
    return [(r["lastEventId"], r["event"], r["data"]) for r in page.stream(name)]


async def received(page: NodeDriver, name: str, count: int) -> list[tuple[str, str, str]]:
    await page.wait_for(
        lambda r: r.get("stream") == name and r["type"] == "message", count=count,
        what=f"{count} message(s) on {name}",
    )  # fmt: skip
    return messages(page, name)


async def test_updates_reach_exact_template_and_urlpattern_selectors_with_id_type_and_lines(
    replicas: Replicas, page: NodeDriver, run: str
) -> None:
    a, b = replicas.urls
    order = f"{run}/orders/7"
    raw = f"order-7-of-{run.rsplit('/', 1)[1]}"  # a topic need not be a URI
    streams = {
        "exact": hub_url(a, ("topic", order)),
        "raw": hub_url(a, ("topic", raw)),
        "several": hub_url(a, ("topic", f"{run}/nothing"), ("topic", order)),
        "template": hub_url(a, ("topic", f"{run}/orders/{{id}}")),
        # On the publishing replica too; and a browser opens at most 6 HTTP/1.1 connections
        # to one host:port, so a 7th EventSource on replica A would wait for one to close.
        "match": hub_url(b, ("match", order)),  # draft-08 exact matcher
        "urlpattern": hub_url(b, ("match_urlpattern", f"{run}/orders/:id")),
        "elsewhere": hub_url(b, ("topic", f"{run}/invoices/{{id}}")),
    }
    await open_streams(page, streams, types=["order.shipped"])
    data = "Order 7 shipped\n\n  two parcels\r\nlast line"  # blank line, indent, CRLF
    update_id = f"{run}:order-7-v1"
    response = await publish(
        b, topic=[f"{run}/alternate/7", order, raw], id=update_id, type="order.shipped", data=data,
        retry="2500",
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == update_id
    fence = await publish(b, topic=f"{run}/invoices/9", id=f"{run}:invoice-9", data="fence")
    assert fence.status_code == 200, fence.text

    assert await received(page, "elsewhere", 1) == [(f"{run}:invoice-9", "message", "fence")]
    # EventSource joins data lines with "\n": a CR LF inside the data is a line break too.
    expected = [(update_id, "order.shipped", data.replace("\r\n", "\n"))]
    for name in ("exact", "raw", "several", "template", "match", "urlpattern"):
        assert await received(page, name, 1) == expected, name


async def test_private_update_reaches_only_subscribers_whose_cookie_or_token_allows_its_topic(
    replicas: Replicas, sites: tuple[str, str], run: str
) -> None:
    a, b = replicas.urls
    inbox, other = f"{run}/users/42/inbox", f"{run}/users/43/inbox"
    cookie = {
        "name": "mercureAuthorization",
        "value": subscriber_token(subscribe=[f"{run}/users/42/{{box}}"]),
        "domain": "127.0.0.1", "path": HUB, "sameSite": "Lax",
    }  # fmt: skip
    page = await open_page(sites[0], cookies=[cookie])
    try:
        streams = {
            "authorized": hub_url(a, ("topic", inbox)),
            "other": hub_url(a, ("topic", other)),
            "anonymous": hub_url(a, ("topic", inbox), ("topic", f"{run}/anonymous")),
            # draft-08 access token in the authorization query parameter, no cookie sent
            "query": hub_url(
                b,
                ("match", inbox),
                ("authorization", subscriber_access_token(f"{run}/users/42/:box")),
            ),
        }
        for name, url in streams.items():
            await open_streams(page, {name: url}, withCredentials=name in ("authorized", "other"))
        for topic in (inbox, other):
            sent = await publish(b, topic=topic, id=f"{topic}#private", data="secret", private="on")
            assert sent.status_code == 200, sent.text
            sent = await publish(b, topic=topic, id=f"{topic}#public", data="for everyone")
            assert sent.status_code == 200, sent.text

        assert await received(page, "authorized", 2) == [
            (f"{inbox}#private", "message", "secret"),
            (f"{inbox}#public", "message", "for everyone"),
        ]
        assert await received(page, "query", 2) == await received(page, "authorized", 2)
        public = [(f"{inbox}#public", "message", "for everyone")]
        assert await received(page, "anonymous", 1) == public
        assert await received(page, "other", 1) == [(f"{other}#public", "message", "for everyone")]
        # The browser sent the cookie with the credentialed streams only; the hub allowed that.
        credentialed = {streams["authorized"], streams["other"]}
        for request in page.matching(lambda r: r["type"] == "request" and r["method"] == "GET"):
            sent = "mercureAuthorization=" in (request["cookie"] or "")
            assert sent == (request["url"] in credentialed), request
        for response in page.matching(lambda r: r["type"] == "response"):
            assert response["allowOrigin"] == sites[0], response
            if response["url"] in credentialed:
                assert response["allowCredentials"] == "true", response
    finally:
        await page.close()


async def test_cors_lets_the_allowed_origin_publish_and_subscribe_and_refuses_another(
    replicas: Replicas, sites: tuple[str, str], page: NodeDriver, run: str
) -> None:
    a, b = replicas.urls
    topic = f"{run}/cors"
    await open_streams(page, {"allowed": hub_url(b, ("topic", topic))})
    # A cross-origin POST with an Authorization header: the browser sends a preflight first.
    answer = await page.command(
        "publish", url=f"{a}{HUB}", token=PUBLISH_ALL,
        fields=[["topic", topic], ["id", f"{topic}#1"], ["data", "from the page"]],
    )  # fmt: skip
    assert answer == {"status": 200, "body": f"{topic}#1", "contentType": answer["contentType"]}
    assert answer["contentType"].startswith("text/plain")
    assert await received(page, "allowed", 1) == [(f"{topic}#1", "message", "from the page")]

    foreign = await open_page(sites[1])
    try:
        await foreign.command("open", name="refused", url=hub_url(b, ("topic", topic)))
        [error] = await foreign.wait_for(lambda r: r.get("stream") == "refused", what="error")
        assert error == {"stream": "refused", "type": "error", "readyState": 2}  # CLOSED
        refused = await foreign.command(
            "publish", url=f"{a}{HUB}", token=PUBLISH_ALL,
            fields=[["topic", topic], ["id", f"{topic}#foreign"], ["data", "x"]],
        )  # fmt: skip
        assert "error" in refused, refused  # the preflight failed: the POST was never sent
    finally:
        await foreign.close()
    fence = await publish(b, topic=topic, id=f"{topic}#2", data="fence")
    assert fence.status_code == 200, fence.text
    assert await received(page, "allowed", 2) == [
        (f"{topic}#1", "message", "from the page"),
        (f"{topic}#2", "message", "fence"),
    ]


async def test_resume_after_a_replica_is_killed_on_the_other_and_on_its_restart(
    replicas: Replicas, page: NodeDriver, run: str
) -> None:
    a, b = replicas.urls
    selector = ("topic", f"{run}/feed/{{n}}")
    await open_streams(page, {"failover": hub_url(a, selector), "native": hub_url(a, selector)})
    ids = [f"{run}:update-{n}" for n in range(1, 8)]

    async def send(n: int) -> None:
        sent = await publish(b, topic=f"{run}/feed/{n}", id=ids[n - 1], data=f"update {n}")
        assert sent.status_code == 200, sent.text

    for n in (1, 2, 3):
        await send(n)
    await received(page, "failover", 3)
    await received(page, "native", 3)

    replicas.kill(0)
    for name in ("failover", "native"):
        await page.wait_for(lambda r, n=name: r == {"stream": n, "type": "error", "readyState": 0},
                            what=f"{name} reconnecting")  # fmt: skip
    for n in (4, 5, 6):  # published while replica 0 is down
        await send(n)
    # What a page does when its hub is gone: reopen on another replica from the last id seen
    # (EventSource cannot set headers, hence Mercure's lastEventID query parameter).
    await page.command("close", name="failover")
    last_seen = page.stream("failover")[-1]["lastEventId"]
    resumed = hub_url(b, selector, ("lastEventID", last_seen))
    await open_streams(page, {"resumed": resumed})
    replicas.restart(0)  # the browser reconnects "native" by itself, sending Last-Event-ID
    await send(7)

    expected = [(ids[n - 1], "message", f"update {n}") for n in range(4, 8)]
    assert await received(page, "resumed", 4) == expected
    assert (await received(page, "native", 7))[3:] == expected
    retries = [r for r in page.matching(lambda r: r["type"] == "request")
               if r["url"] == hub_url(a, selector) and r["lastEventId"]]  # fmt: skip
    assert retries and {r["lastEventId"] for r in retries} == {ids[2]}, retries
    fence = await publish(b, topic=f"{run}/feed/8", id=f"{run}:fence", data="fence")
    assert fence.status_code == 200, fence.text
    await received(page, "resumed", 5)
    assert len(await received(page, "native", 8)) == 8  # nothing twice


async def test_page_sees_who_is_subscribed_on_either_replica_by_events_and_the_api(
    replicas: Replicas, sites: tuple[str, str], run: str
) -> None:
    """A "who is online" page, as Mercure's chat example builds it: subscription events and the
    subscriptions API, with the cookie, while the member's stream is on the other replica."""
    a, b = replicas.urls
    room = f"{run}/rooms/lobby"
    events = f"{HUB}/subscriptions{{/topic}}{{/subscriber}}"
    token = subscriber_token(subscribe=[events, room], payload={"nick": "ada"})
    cookie = {"name": "mercureAuthorization", "value": token, "domain": "127.0.0.1", "path": HUB}
    page = await open_page(sites[0], cookies=[cookie])
    try:
        await open_streams(page, {"watcher": hub_url(a, ("topic", events))}, withCredentials=True)
        await open_streams(page, {"member": hub_url(b, ("topic", room))}, withCredentials=True)
        joined = await subscription_event(page, room, active=True)
        assert joined["payload"] == {"nick": "ada"}, joined
        listing = await page.command("get", url=f"{a}{HUB}/subscriptions/{quote(room, safe='')}")
        assert listing["status"] == 200, listing
        assert listing["contentType"].startswith("application/ld+json"), listing
        members = json.loads(listing["body"])["subscriptions"]
        assert [(m["subscriber"], m["payload"]) for m in members] == [
            (joined["subscriber"], {"nick": "ada"})
        ]
        await page.command("close", name="member")
        left = await subscription_event(page, room, active=False)
        assert left["subscriber"] == joined["subscriber"]
        listing = await page.command("get", url=f"{a}{HUB}/subscriptions/{quote(room, safe='')}")
        assert json.loads(listing["body"])["subscriptions"] == [], listing
    finally:
        await page.close()


async def subscription_event(page: NodeDriver, topic: str, *, active: bool) -> Record:
    def about(record: Record) -> bool:
        if record.get("stream") != "watcher" or record["type"] != "message":
            return False
        document = json.loads(record["data"])
        return bool(document["topic"] == topic and document["active"] is active)

    [event] = await page.wait_for(about, what=f"subscription event active={active} on {topic}")
    return dict(json.loads(event["data"]))
