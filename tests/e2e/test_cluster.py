"""Three replicas behind nginx (round-robin, no stickiness): fan-out, rolling restart, SIGKILL.

The truth each subscriber is held to is the channel's Redis stream after the run: every entry
once, in order, with its data. Figures (published / received / duplicated) are printed per run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.e2e.cluster import CLEAN_EXITS, Cluster
from tests.e2e.resuming import PacedPublisher, ResumingSubscriber, Tally, wait_until

pytestmark = pytest.mark.e2e


def channel_names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"e2e-orders-{suffix}", f"e2e-alerts-{suffix}"


def spread(
    base_url: str, http: httpx.AsyncClient, a: str, b: str, n: int
) -> list[ResumingSubscriber]:
    """``n`` subscribers per kind: on ``a``, on ``b``, and on both in one stream."""
    kinds = [(a,), (b,), (a, b)]
    return [ResumingSubscriber(http, base_url, kind) for kind in kinds for _ in range(n)]


@asynccontextmanager
async def running(subscribers: list[ResumingSubscriber]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(sub.run()) for sub in subscribers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def connected(subscribers: list[ResumingSubscriber]) -> None:
    async with asyncio.timeout(30):
        await asyncio.gather(*(sub.connected.wait() for sub in subscribers))


def tally(
    cluster: Cluster, subscribers: list[ResumingSubscriber], channels: tuple[str, str]
) -> tuple[dict[str, list[tuple[str, str]]], list[Tally]]:
    truth = {channel: cluster.history(channel) for channel in channels}
    tallies = [
        Tally.of(sub.received[channel], truth[channel])
        for sub in subscribers
        for channel in sub.channels
    ]
    return truth, tallies


def report(name: str, published: int, failures: int, tallies: list[Tally], reconnects: int) -> None:
    received = sum(t.received for t in tallies)
    expected = sum(t.expected for t in tallies)
    duplicated = sum(t.duplicated for t in tallies)
    missing = sum(t.missing for t in tallies)
    print(
        f"\n[{name}] published={published} publish_failures={failures} "
        f"deliveries_expected={expected} received={received} duplicated={duplicated} "
        f"missing={missing} reconnects={reconnects}"
    )


def assert_exact(
    cluster: Cluster, subscribers: list[ResumingSubscriber], tallies: list[Tally]
) -> None:
    bad = [t for t in tallies if not t.exact]
    assert not bad, f"{len(bad)} streams not exact, e.g. {bad[:3]}\n{cluster.logs()}"
    assert all(not sub.gaps for sub in subscribers), [sub.gaps for sub in subscribers if sub.gaps]
    refused = [code for sub in subscribers for code in sub.refusals]
    assert not refused, f"non-200 answers a browser would not retry: {refused}"


def make_http() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=20)
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), limits=limits)


async def test_publish_through_proxy_reaches_every_subscriber_once(
    cluster: Cluster,
) -> None:
    a, b = channel_names()
    async with make_http() as http:
        subscribers = spread(cluster.url, http, a, b, 10)
        async with running(subscribers):
            await connected(subscribers)
            publishers = [PacedPublisher(http, cluster.url, channel) for channel in (a, b)]
            for seq in range(1, 151):
                await asyncio.gather(*(publisher.publish(seq) for publisher in publishers))
            truth = {channel: cluster.history(channel) for channel in (a, b)}
            await wait_until(lambda: all(sub.has_all(truth) for sub in subscribers), 30)
        _, tallies = tally(cluster, subscribers, (a, b))
    report("fan-out", 300, sum(len(p.failures) for p in publishers), tallies, 0)
    replicas = {upstream for sub in subscribers for upstream in sub.upstreams}
    assert replicas == {f"127.0.0.1:{port}" for port in cluster.ports}
    assert all(not p.failures for p in publishers), [p.failures for p in publishers]
    assert all(len(truth[channel]) == 150 for channel in (a, b))
    assert_exact(cluster, subscribers, tallies)


async def churn_under_load(cluster: Cluster, name: str, replace: Callable[[], object]) -> None:
    """Subscribers on 2 channels (single and multi-channel streams) and continuous publishing
    through the proxy while ``replace`` restarts replicas; then hold everyone to the history."""
    a, b = channel_names()
    async with make_http() as http:
        subscribers = spread(cluster.url, http, a, b, 5)
        publishers = [PacedPublisher(http, cluster.url, channel, batch=4) for channel in (a, b)]
        async with running(subscribers):
            await connected(subscribers)
            stop = asyncio.Event()
            publishing = [
                asyncio.create_task(p.run(stop, at_least=1600, interval=0.005)) for p in publishers
            ]
            await asyncio.to_thread(replace)
            stop.set()
            await asyncio.gather(*publishing)
            truth = {channel: cluster.history(channel) for channel in (a, b)}
            await wait_until(lambda: all(sub.has_all(truth) for sub in subscribers), 45)
        truth, tallies = tally(cluster, subscribers, (a, b))
    attempted = sum(p.attempted for p in publishers)
    failures = [f for p in publishers for f in p.failures]
    reconnects = sum(len(sub.upstreams) - 1 for sub in subscribers)
    report(name, attempted, len(failures), tallies, reconnects)
    # A publish racing a replica's exit can fail with a 502 (nginx never resends a POST, so it
    # is published once or not at all); every acknowledged one is in history.
    for publisher in publishers:
        assert all(f.startswith("502 ") for f in publisher.failures), publisher.failures
        assert set(publisher.acked) <= {entry_id for entry_id, _ in truth[publisher.channel]}
    acked = sum(len(publisher.acked) for publisher in publishers)
    assert acked >= 3000 and sum(len(truth[channel]) for channel in (a, b)) >= acked
    assert reconnects > 0, "no stream was moved: the restart did not exercise resume"
    assert_exact(cluster, subscribers, tallies)


async def test_rolling_restart_under_publishing_loses_and_repeats_nothing(
    cluster: Cluster,
) -> None:
    codes: list[int] = []

    def restart() -> None:
        codes.extend(cluster.rolling_restart())

    await churn_under_load(cluster, "rolling restart", restart)
    assert len(codes) == 3 and set(codes) <= CLEAN_EXITS, f"unclean exit on SIGTERM: {codes}"


async def test_sigkill_of_a_replica_under_publishing_loses_and_repeats_nothing(
    cluster: Cluster,
) -> None:
    await churn_under_load(cluster, "SIGKILL", lambda: cluster.replace(1, kill=True))


async def test_streams_opened_while_a_replica_drains_are_served_by_another(
    cluster: Cluster,
) -> None:
    """A draining replica answers new streams 503, and EventSource never retries a non-200
    answer: the proxy must (``proxy_next_upstream ... http_503``). Regression for that setting."""
    channel = f"e2e-drain-{uuid.uuid4().hex[:8]}"
    victim = cluster.gateways[0]
    async with make_http() as http:
        holders = [ResumingSubscriber(http, cluster.url, (channel,)) for _ in range(9)]
        async with running(holders):
            await connected(holders)  # three on each replica: the drain lasts a while
            victim.terminate()
            async with asyncio.timeout(10):  # until it drains: /readyz answers 503
                while (await http.get(victim.url + "/readyz")).status_code != 503:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            burst = [ResumingSubscriber(http, cluster.url, (channel + "-new",)) for _ in range(12)]
            async with running(burst):
                await connected(burst)
        refused = [code for sub in burst for code in sub.refusals]
    await asyncio.to_thread(victim.wait, 30)
    await asyncio.to_thread(cluster.replace, 0)  # leave three ready replicas behind
    await wait_until(lambda: len(lines_for(cluster, channel + "-new")) == 12, 10)
    log = lines_for(cluster, channel + "-new")
    assert not refused, f"new streams refused while a replica drained: {refused}"
    assert any("upstream_status=503, " in line for line in log), "\n".join(log)


def lines_for(cluster: Cluster, channel: str) -> list[str]:
    return [line for line in cluster.proxy.access_log() if f"/subscribe/{channel} " in line]
