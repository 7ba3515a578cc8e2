"""Failovers under continuous publishing, on Redis Cluster and on Sentinel (issue 11).

Replication is asynchronous. To make a failover lose something on purpose, the replica is paused
(SIGSTOP) while its master keeps acknowledging publishes, then the master is killed and the
replica resumed and promoted: whatever was acknowledged meanwhile is gone. The gateway must say
so with ``gateway.gap`` (default), or never acknowledge it (GATEWAY_PUBLISH_MIN_REPLICAS=1).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from publisher import AsyncPublisher, Publisher
from publisher.errors import BackendUnavailable
from publisher.wire import stream_key
from tests.cluster.conftest import start_gateways
from tests.cluster.feeds import Feed, Producer, eventually, producing, reading
from tests.support.redis_server import RedisServer
from tests.support.topologies import ClusterSetup, SentinelSetup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def history(node: RedisServer, channel: str) -> set[str]:
    return {i.decode() for i, _ in node.client().xrange(stream_key(channel))}


async def check_default_promise(
    producer: Producer, feeds: list[Feed], survivors: set[str], after_failover: int
) -> set[str]:
    """What was acknowledged and survived arrives once; what was lost is announced by a gap."""
    channel = producer.channel
    expected = set(producer.acked) & survivors
    for feed in feeds:
        await eventually(lambda f=feed: expected <= set(f.ids(channel)), 15, "survivors delivered")
    assert producer.unexpected() == {}, producer.statuses  # 202 or 503, never a 500
    lost = set(producer.acked) - survivors
    assert lost, "the scenario was meant to lose the unreplicated publishes"
    assert len(producer.acked) > after_failover, "publishing did not resume after the failover"
    for feed in feeds:
        assert feed.duplicates() == []
        delivered = set(feed.ids(channel))
        assert set(producer.acked) & survivors <= delivered
        assert feed.gaps_on(channel) >= 1, "history lost entries without a gateway.gap"
    return lost


def cut_replication(master: RedisServer, replica: RedisServer) -> None:
    """Stop the replica and drop its link: SIGSTOP alone would not do, the kernel would still
    buffer the replication stream for it to read on SIGCONT."""
    replica.pause()
    master.client().client_kill_filter(_type="replica")


async def lose_unreplicated_publishes(
    producer: Producer, master: RedisServer, replica: RedisServer, kill: object
) -> int:
    """Publish with replication cut, kill the master, resume the replica; wait for more."""
    await eventually(lambda: len(producer.acked) >= 20, what="publishes before the failover")
    cut_replication(master, replica)
    paused_at = len(producer.acked)
    await eventually(lambda: len(producer.acked) >= paused_at + 10, what="unreplicated acks")
    await asyncio.to_thread(kill)  # type: ignore[arg-type]
    after = len(producer.acked)
    await eventually(lambda: len(producer.acked) >= after + 20, 30, "publishes after failover")
    return after


async def test_cluster_master_killed_while_publishing(tmp_path: Path):
    cluster = ClusterSetup(tmp_path, replicas=1)
    try:
        cluster.start()
        envs = [{}, {"GATEWAY_PUBLISH_MIN_REPLICAS": "1"}]
        gateways = start_gateways(cluster.first_url, tmp_path, envs)
        try:
            await _cluster_failovers(cluster, *(g.url for g in gateways))
        finally:
            for gateway in gateways:
                gateway.stop()
    finally:
        cluster.close()


def _channel_on(cluster: ClusterSetup, master: RedisServer, avoid: RedisServer | None) -> str:
    for n in range(1000):
        owner = cluster.owner(stream_key(f"fo-{n}"))
        if (owner == master) if avoid is None else (owner not in (avoid, master) and owner):
            return f"fo-{n}"
    raise AssertionError("no channel found")


async def _cluster_failovers(cluster: ClusterSetup, default_url: str, durable_url: str) -> None:
    first = cluster.nodes[0]  # the only node the gateways were told about
    ch_a = _channel_on(cluster, first, None)
    ch_b = _channel_on(cluster, first, first)
    async with reading(default_url, [ch_a, ch_b]) as f0, reading(durable_url, [ch_a, ch_b]) as f1:
        # Default promise, on the shard of the one node in the URL.
        replica = cluster.replica_of(first)
        promoted: list[RedisServer] = []

        def kill_a() -> None:
            promoted.append(cluster.kill_master_of(stream_key(ch_a), resume=replica))

        async with producing(default_url, ch_a) as producer:
            after = await lose_unreplicated_publishes(producer, first, replica, kill_a)
        await asyncio.sleep(0.5)
        lost = await check_default_promise(producer, [f0, f1], history(promoted[0], ch_a), after)
        print(f"cluster default: {len(producer.acked)} acked, {len(lost)} lost with a gap")

        # GATEWAY_PUBLISH_MIN_REPLICAS=1 (the gateway) and min_replicas=1 (the library).
        owner_b = cluster.owner(stream_key(ch_b))
        replica_b = cluster.replica_of(owner_b)
        library = AsyncPublisher(cluster.url, min_replicas=1, timeout=2.0)
        try:
            assert await library.publish(ch_b, {"library": "replicated"})
            async with producing(durable_url, ch_b) as durable:
                await eventually(lambda: len(durable.acked) >= 20, what="durable publishes")
                cut_replication(owner_b, replica_b)
                held = len(durable.acked)
                await eventually(lambda: durable.statuses[503] >= 2, what="503 while unreplicated")
                with pytest.raises(BackendUnavailable):
                    await library.publish(ch_b, {"library": "unreplicated"})
                await asyncio.to_thread(cluster.kill_master_of, stream_key(ch_b), resume=replica_b)
                assert len(durable.acked) <= held + 1  # at most one was in flight at the pause
        finally:
            await library.aclose()
        await asyncio.sleep(0.5)
        survivors = history(replica_b, ch_b)
        assert durable.unexpected() == {}, durable.statuses
        assert set(durable.acked) <= survivors  # every acknowledged publish survived
        for feed in (f0, f1):
            assert set(durable.acked) <= set(feed.ids(ch_b)) and feed.duplicates() == []
        print(f"cluster min_replicas=1: {len(durable.acked)} acked, 0 lost; {durable.statuses}")


async def test_sentinel_master_killed_while_publishing(tmp_path: Path):
    sentinel = SentinelSetup(tmp_path, replicas=1)
    try:
        sentinel.start()
        gateways = start_gateways(sentinel.url, tmp_path, [{}])
        try:
            await _sentinel_failover(sentinel, gateways[0].url)
        finally:
            gateways[0].stop()
    finally:
        sentinel.close()


class LibraryProducer(threading.Thread):
    """The blocking publisher library, publishing straight to Redis through Sentinel."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(daemon=True)
        self.url, self.channel = url, channel
        self.acked: list[str] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with Publisher(self.url, timeout=2.0) as publisher:
            while not self.stopping.wait(0.01):
                try:
                    self.acked.append(publisher.publish(self.channel, {"n": len(self.acked)}))
                except BackendUnavailable:
                    self.failures += 1


async def _sentinel_failover(sentinel: SentinelSetup, url: str) -> None:
    channel = "sentinel-fo"
    replica = sentinel.replicas[0]
    durable = Publisher(sentinel.url, min_replicas=1, timeout=2.0)
    assert durable.publish(channel, {"durable": True})
    library = LibraryProducer(sentinel.url, channel)
    async with reading(url, [channel]) as feed:
        library.start()
        try:
            async with producing(url, channel) as producer:

                def kill() -> None:
                    with pytest.raises(BackendUnavailable):  # the library's min_replicas=1
                        durable.publish(channel, {"durable": "unreplicated"})
                    sentinel.kill_master(resume=replica)

                master = sentinel.master
                after = await lose_unreplicated_publishes(producer, master, replica, kill)
                library_after = len(library.acked)
                await eventually(lambda: len(library.acked) >= library_after + 20, 20, "library")
        finally:
            library.stopping.set()
            await asyncio.to_thread(library.join, 10)
            durable.close()
        survivors = history(sentinel.master, channel)
        await check_default_promise(producer, [feed], survivors, after)
        assert set(library.acked) & survivors <= set(feed.ids(channel))
    print(f"sentinel: gateway {producer.statuses}, library {len(library.acked)} acked, "
          f"{library.failures} refused during the failover")  # fmt: skip
