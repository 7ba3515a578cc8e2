"""Sharded pub/sub on a real 3-master Redis Cluster behind two gateways (issue 11)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from publisher.wire import parse_stream_id, shard_channel, stream_key
from tests.cluster.feeds import eventually, producing, reading
from tests.support.redis_server import RedisServer
from tests.support.topologies import ClusterSetup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CHANNELS = [f"shard-{n}" for n in range(32)]  # every master owns some (checked)


def shard_subscribers(node: RedisServer, channel: str) -> int:
    reply = node.client().execute_command("PUBSUB", "SHARDNUMSUB", shard_channel(channel))
    return int(reply[1])


def bus_counters(cluster: ClusterSetup) -> dict[int, dict[str, int]]:
    """Each live node's cluster-bus pub/sub message counters (classic and sharded)."""
    names = ("publish_sent", "publish_received", "publishshard_sent", "publishshard_received")
    counters = {}
    for node in cluster.live():
        info: dict[str, Any] = node.client().cluster("info")
        counters[node.port] = {n: int(info.get(f"cluster_stats_messages_{n}", 0)) for n in names}
    return counters


async def publish_round(http: httpx.AsyncClient, urls: list[str], tag: str) -> dict[str, str]:
    """One message on every channel, through the gateways in turn; channel -> its id."""
    ids = {}
    for n, channel in enumerate(CHANNELS):
        reply = await http.post(f"{urls[n % len(urls)]}/publish/{channel}", json={"tag": tag})
        assert reply.status_code == 202, reply.text
        ids[channel] = reply.json()["id"]
    return ids


async def test_each_channel_is_served_by_its_own_shard_exactly_once(cluster, gateways):
    urls = [g.url for g in gateways]
    owners = {c: cluster.owner(stream_key(c)) for c in CHANNELS}
    masters = set(owners.values())
    assert len(masters) == 3
    before = bus_counters(cluster)
    async with httpx.AsyncClient() as http:
        async with reading(urls[0], CHANNELS) as first, reading(urls[1], CHANNELS) as second:
            await eventually(lambda: all(shard_subscribers(o, c) == 2 for c, o in owners.items()))
            for channel, owner in owners.items():  # SSUBSCRIBEd on the owner, nowhere else
                assert {shard_subscribers(n, channel) for n in cluster.live() if n != owner} == {0}
            for node in cluster.live():  # and no classic subscription anywhere
                assert node.client().pubsub_channels() == []
            sent = [await publish_round(http, urls, f"r{r}") for r in range(3)]
            await eventually(lambda: len(first.events) == len(second.events) == 3 * 32)
            for feed in (first, second):
                assert feed.duplicates() == [] and feed.gaps == []
                for channel in CHANNELS:
                    assert feed.ids(channel) == [ids[channel] for ids in sent]
            resume_from = first.last_event_id
        after = bus_counters(cluster)
        # Nothing crossed the bus as a classic PUBLISH; a shard's messages reached only its own
        # replicas (masters received none from other shards).
        for port, counts in after.items():
            assert counts["publish_sent"] == before[port]["publish_sent"]
            assert counts["publish_received"] == before[port]["publish_received"]
        for master in masters:
            grown = {k: after[master.port][k] - before[master.port][k] for k in after[master.port]}
            published = 3 * sum(1 for owner in owners.values() if owner == master)
            assert grown["publishshard_sent"] == published  # to its one replica, once each
            assert grown["publishshard_received"] == 0

        missed = await publish_round(http, urls[:1], "missed")  # while nobody listens
        async with reading(urls[1], CHANNELS, last_event_id=resume_from) as resumed:
            await eventually(lambda: len(resumed.events) >= 32)
            await asyncio.sleep(0.2)  # nothing more may come
            assert sorted(resumed.events) == sorted(missed.items())
    # The last subscriber left: every shard channel is released on its owner.
    await eventually(
        lambda: all(shard_subscribers(owners[c], c) == 0 for c in CHANNELS), 10, "SUNSUBSCRIBE"
    )


def move_keys(slot: int, source: RedisServer, target: RedisServer) -> None:
    """The first half of what ``redis-cli --cluster reshard`` does for one slot: mark it, move
    its keys. Until :func:`assign_slot`, the source answers ``ASK`` for them."""
    src, dst = source.client(), target.client()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _id(source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _id(target))
    while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)


def assign_slot(cluster: ClusterSetup, slot: int, source: RedisServer, target: RedisServer) -> None:
    """The second half: the slot belongs to the target, told to every master."""
    others = [m for m in masters_of(cluster) if m not in (source, target)]
    for node in (target, source, *others):
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", _id(target))


def _id(node: RedisServer) -> str:
    return str(node.client().execute_command("CLUSTER", "MYID").decode())


def masters_of(cluster: ClusterSetup) -> list[RedisServer]:
    return [n for n in cluster.live() if n.client().role()[0] == b"master"]


async def test_resharding_a_followed_slot_while_publishing_loses_and_repeats_nothing(
    cluster, gateways
):
    channel = "reshard-me"
    source = cluster.owner(stream_key(channel))
    target = next(m for m in masters_of(cluster) if m != source)
    slot = int(source.client().execute_command("CLUSTER", "KEYSLOT", stream_key(channel)))
    urls = [g.url for g in gateways]
    async with reading(urls[0], [channel]) as first, reading(urls[1], [channel]) as second:
        async with producing(urls[0], channel) as p0, producing(urls[1], channel) as p1:
            await eventually(lambda: len(p0.acked) >= 20 and len(p1.acked) >= 20)
            await asyncio.to_thread(move_keys, slot, source, target)
            # Keys moved, slot not yet reassigned: the source answers ASK, which the gateways
            # follow (ASKING on the target) - publishing goes on, not one 503.
            asked_at = len(p0.acked), len(p1.acked)
            await eventually(lambda: len(p0.acked) >= asked_at[0] + 10, what="publishes on ASK")
            await eventually(lambda: len(p1.acked) >= asked_at[1] + 10, what="publishes on ASK")
            await asyncio.to_thread(assign_slot, cluster, slot, source, target)
            moved_at = len(p0.acked), len(p1.acked)
            await eventually(lambda: len(p0.acked) >= moved_at[0] + 20, what="publishes resume")
            await eventually(lambda: len(p1.acked) >= moved_at[1] + 20, what="publishes resume")
        acked = sorted(p0.acked + p1.acked, key=parse_stream_id)
        for feed in (first, second):
            await eventually(lambda f=feed: len(f.events) >= len(acked), what="every message")
            await asyncio.sleep(0.2)
            assert feed.ids(channel) == acked  # none lost, none twice, in order
            assert feed.gaps == []
        assert cluster.owner(stream_key(channel)) == target
        assert shard_subscribers(target, channel) == 2 and shard_subscribers(source, channel) == 0
        assert p0.unexpected() == {} and p1.unexpected() == {}
        assert p0.statuses[503] + p1.statuses[503] == 0  # ASK and MOVED were both followed
        print(f"resharded slot {slot}: {len(acked)} acknowledged, all delivered once; "
              f"503s during the move: {p0.statuses[503] + p1.statuses[503]}")  # fmt: skip
