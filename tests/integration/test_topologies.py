"""The same gateway on Redis Sentinel and Redis Cluster: publish, deliver, resume on replicas."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from publisher import Publisher
from tests.support.sse import sse_connect
from tests.support.topologies import ClusterSetup, SentinelSetup

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sentinel", "cluster"])
def topology(request, tmp_path):
    setup = (SentinelSetup if request.param == "sentinel" else ClusterSetup)(tmp_path)
    try:  # a start that fails half-way must not leave its redis-servers behind
        setup.start()
        yield setup
    finally:
        setup.close()


async def test_publish_deliver_and_resume_across_replicas(topology, start_gateway):
    first, second = start_gateway(topology.url), start_gateway(topology.url)
    channels = [f"topo-{n}" for n in range(6)]  # spread over cluster slots
    path = "/subscribe?" + "&".join(f"channel={c}" for c in channels)
    async with sse_connect(first.url + path) as stream:
        await stream.next_frame()
        async with httpx.AsyncClient() as http:
            for n, channel in enumerate(channels):
                reply = await http.post(f"{second.url}/publish/{channel}", json={"n": n})
                assert reply.status_code == 202, reply.text
        library_id = await asyncio.to_thread(_publish_once, topology.url, channels[0], {"n": "lib"})
        events = await stream.collect(len(channels) + 1)
        resume_from = stream.last_event_id
    # Order holds per channel; across channels on different cluster nodes it need not.
    by_channel = {c: [e.json()["n"] for e in events if e.channel == c] for c in channels}
    assert by_channel == {c: ([n, "lib"] if n == 0 else [n]) for n, c in enumerate(channels)}
    assert any(e.id.startswith(f"{channels[0]}={library_id}") for e in events)

    async with httpx.AsyncClient() as http:
        missed = [
            (await http.post(f"{first.url}/publish/{c}", json={"missed": c})).json()["id"]
            for c in channels
        ]
    async with sse_connect(second.url + path, last_event_id=resume_from) as stream:
        replayed = await stream.collect(len(channels))
    # Each channel's missed event exactly once, with its own id first in the vector.
    assert sorted((e.channel, e.json()["missed"]) for e in replayed) == [(c, c) for c in channels]
    expected = sorted(f"{c}={i}" for c, i in zip(channels, missed, strict=True))
    assert sorted(e.id.split(",")[0] for e in replayed) == expected


def _publish_once(url: str, channel: str, message: object) -> str:
    with Publisher(url) as publisher:  # closed: a cluster client's sockets would outlive the test
        return publisher.publish(channel, message)


async def test_counts_and_revocation_across_replicas(topology, start_gateway):
    """Presence keys sit under each channel's hash tag and control messages reach every
    replica: on Cluster too, with channels spread over the nodes."""
    first, second = start_gateway(topology.url), start_gateway(topology.url)
    channels = [f"topo-ops-{n}" for n in range(4)]
    path = "/subscribe?" + "&".join(f"channel={c}" for c in channels)
    async with sse_connect(first.url + path) as stream, httpx.AsyncClient(timeout=5) as http:
        await stream.next_frame()
        for channel in channels:
            for _ in range(100):  # written after the 50 ms coalescing delay
                info = (await http.get(f"{second.url}/channels/{channel}")).json()
                if info["subscribers"] == 1:
                    break
                await asyncio.sleep(0.05)
            assert info["subscribers"] == 1, (channel, info)
        reply = await http.delete(f"{second.url}/channels/{channels[-1]}/subscribers")
        assert reply.status_code == 202, reply.text
        # The listeners Redis counted: both gateways, on Cluster too (SPUBLISH on the control
        # channel's shard, where every gateway SSUBSCRIBEs it).
        assert reply.json()["replicas"] == 2
        farewell = await stream.next_event()
    assert farewell is not None and farewell.event == "gateway.revoked"
