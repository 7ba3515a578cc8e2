"""Real EventSource implementations no one here wrote, through the proxy: headless Chromium
(playwright-core), the npm ``eventsource`` package under Node, and ``httpx-sse`` in Python.

Each receives on one and on several channels, resumes across a rolling restart by itself
(honouring the short ``retry:`` a draining replica sends, sending ``Last-Event-ID``) with nothing
lost or repeated, gets CORS right from another origin, and authenticates with a cookie.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
import pytest

from tests.e2e.clients import Client, HttpxSseClient, NodeClient, StreamLog, stream_url
from tests.e2e.cluster import CLEAN_EXITS, Cluster
from tests.e2e.conftest import JWT_SECRET
from tests.e2e.resuming import PacedPublisher, Tally, wait_until

pytestmark = pytest.mark.e2e

CLIENTS = ["chromium", "node-eventsource", "httpx-sse"]
PAGE = "/page/streams.html"


def make_client(
    kind: str, streams: list[StreamLog], page: str, cookie: tuple[str, str] | None = None
) -> Client:
    if kind == "chromium":
        url = cookie_url(streams)
        cookies = [{"name": cookie[0], "value": cookie[1], "url": url}] if cookie else []
        return NodeClient("chromium.mjs", streams, page=page, cookies=cookies)
    headers = {"Cookie": f"{cookie[0]}={cookie[1]}"} if cookie else {}
    if kind == "node-eventsource":
        return NodeClient("node-eventsource.mjs", streams, headers=headers)
    return HttpxSseClient(streams, headers=headers)


def cookie_url(streams: list[StreamLog]) -> str:
    """The gateway's origin (where the cookie belongs), taken from the first stream's URL."""
    return streams[0].url.split("/subscribe", 1)[0]


def token(subscribe: list[str], publish: list[str] | None = None) -> str:
    claims = {"sse": {"subscribe": subscribe, "publish": publish or []}, "exp": time.time() + 600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def assert_exact(client: Client, cluster: Cluster) -> None:
    for stream in client.streams.values():
        for channel in stream.channels:
            result = Tally.of(stream.received[channel], cluster.history(channel))
            assert result.exact, f"{stream.name}/{channel}: {result}\n{client.transcript()}"
        assert not stream.gaps, stream.gaps
        assert not stream.failed, f"{stream.name} gave up: {stream.errors}\n{client.transcript()}"


def assert_ambiguous_only(publishers: list[PacedPublisher], cluster: Cluster) -> None:
    """A publish may fail only as a 502 that raced a replica's exit (see docs/e2e.md), and every
    acknowledged one is in history."""
    for publisher in publishers:
        assert all(f.startswith("502 ") for f in publisher.failures), publisher.failures
        history = {entry_id for entry_id, _ in cluster.history(publisher.channel)}
        assert set(publisher.acked) <= history


def names(prefix: str = "e2e") -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"{prefix}-orders-{suffix}", f"{prefix}-alerts-{suffix}"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_client_receives_and_resumes_across_a_rolling_restart(
    kind: str, secure_cluster: Cluster
) -> None:
    cluster = secure_cluster
    a, b = names("e2e-public")
    streams = [
        StreamLog("one", stream_url(cluster.url, (a,)), (a,)),
        StreamLog("both", stream_url(cluster.url, (a, b)), (a, b)),
    ]
    client = make_client(kind, streams, cluster.url + PAGE)
    async with httpx.AsyncClient(timeout=10) as http:
        publishers = [PacedPublisher(http, cluster.url, channel) for channel in (a, b)]
        await client.start()
        try:
            await wait_until(lambda: all(s.opens for s in streams), 30)
            assert all(s.opens for s in streams), client.transcript()
            # One and several channels, live.
            for seq in range(1, 21):
                await asyncio.gather(*(p.publish(seq) for p in publishers))
            truth = {channel: cluster.history(channel) for channel in (a, b)}
            await wait_until(lambda: all(s.has_all(truth) for s in streams), 30)
            assert all(s.has_all(truth) for s in streams), client.transcript()
            # Every replica drains and is replaced while publishing goes on.
            stop = asyncio.Event()
            running = [
                asyncio.create_task(p.run(stop, at_least=50, interval=0.02)) for p in publishers
            ]
            codes = await asyncio.to_thread(cluster.rolling_restart)
            stop.set()
            await asyncio.gather(*running)
            truth = {channel: cluster.history(channel) for channel in (a, b)}
            await wait_until(lambda: all(s.has_all(truth) for s in streams), 30)
        finally:
            await client.close()
    published = sum(p.attempted for p in publishers)
    figures = " ".join(
        f"{s.name}:opens={s.opens},requests={len(s.sent_ids)},"
        f"received={sum(len(r) for r in s.received.values())}"
        for s in streams
    )
    print(f"\n[{kind}] published={published} {figures}")
    assert set(codes) <= CLEAN_EXITS, f"a replica did not exit cleanly on SIGTERM: {codes}"
    assert_ambiguous_only(publishers, cluster)
    assert_exact(client, cluster)
    for stream in streams:
        assert stream.opens >= 2, f"{stream.name} never reconnected\n{client.transcript()}"
        if stream.sent_ids:  # what the client itself put on the wire, where it lets us see it
            assert stream.sent_ids[0] is None
            assert all(stream.sent_ids[1:]), f"reconnect without Last-Event-ID: {stream.sent_ids}"


async def test_chromium_cors_from_another_origin(secure_cluster: Cluster) -> None:
    """A page on the allowed origin reads the stream; one on any other origin is refused by the
    browser. Both origins are served by the proxy's second server: 127.0.0.1 and localhost."""
    cluster = secure_cluster
    public = names("e2e-public")[0]
    allowed_page = cluster.proxy.page_origin + PAGE
    other_page = f"http://localhost:{cluster.proxy.page_port}{PAGE}"
    allowed = StreamLog("allowed", stream_url(cluster.url, (public,)), (public,), False)
    refused = StreamLog("refused", stream_url(cluster.url, (public,)), (public,), False)
    clients = [
        NodeClient("chromium.mjs", [allowed], page=allowed_page),
        NodeClient("chromium.mjs", [refused], page=other_page),
    ]
    publisher_token = token([], ["*"])
    async with httpx.AsyncClient(
        timeout=10, headers={"Authorization": f"Bearer {publisher_token}"}
    ) as http:
        await asyncio.gather(*(client.start() for client in clients))
        try:
            await wait_until(lambda: bool(allowed.opens and refused.errors), 30)
            publisher = PacedPublisher(http, cluster.url, public)
            for seq in range(1, 11):
                await publisher.publish(seq)
            truth = {public: cluster.history(public)}
            await wait_until(lambda: allowed.has_all(truth), 20)
        finally:
            await asyncio.gather(*(client.close() for client in clients))
    assert not publisher.failures, publisher.failures
    assert len(truth[public]) == 10
    assert_exact(clients[0], cluster)
    assert refused.opens == 0 and not refused.received[public]
    assert refused.failed, clients[1].transcript()
    assert "CORS" in clients[1].transcript()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_client_authenticates_with_a_cookie(kind: str, secure_cluster: Cluster) -> None:
    """A cookie ``sse_token`` granting one channel: that stream is served (cross-origin with
    credentials, for the browser); a channel the token does not grant, and a request without
    the cookie, are answered 403 / 401 and the client gives up, as EventSource must."""
    cluster = secure_cluster
    granted, other = names("e2e-private")
    streams = [
        StreamLog("granted", stream_url(cluster.url, (granted,)), (granted,)),
        StreamLog("forbidden", stream_url(cluster.url, (other,)), (other,)),
        StreamLog("anonymous", stream_url(cluster.url, (granted,)) + "?anon=1", (granted,), False),
    ]
    cookie = ("sse_token", token([granted]))
    client = make_client(kind, streams, cluster.proxy.page_origin + PAGE, cookie)
    publisher_token = token([], ["*"])
    async with httpx.AsyncClient(
        timeout=10, headers={"Authorization": f"Bearer {publisher_token}"}
    ) as http:
        await client.start()
        try:
            await wait_until(
                lambda: bool(streams[0].opens and streams[1].failed and streams[2].failed), 30
            )
            publishers = [PacedPublisher(http, cluster.url, ch) for ch in (granted, other)]
            for seq in range(1, 11):
                await asyncio.gather(*(p.publish(seq) for p in publishers))
            truth = {granted: cluster.history(granted)}
            await wait_until(lambda: streams[0].has_all(truth), 20)
        finally:
            await client.close()
    assert all(not p.failures for p in publishers), [p.failures for p in publishers]
    granted_stream, forbidden, anonymous = streams
    result = Tally.of(granted_stream.received[granted], truth[granted])
    assert result.exact and result.expected == 10, f"{result}\n{client.transcript()}"
    for refused in (forbidden, anonymous):
        assert refused.failed and refused.opens == 0, f"{refused}\n{client.transcript()}"
        assert not any(refused.received.values())
    if kind != "chromium":  # the others let us see the answers themselves
        assert forbidden.statuses == [403] and anonymous.statuses == [401]
