"""The issue-14 tools on Redis Cluster: each script's keys share one slot (the channel's, or the
bucket's own hash tag), so idempotent publish, shared rate limits and history all work there."""

from __future__ import annotations

import httpx
import pytest

from publisher import Publisher
from tests.support.topologies import ClusterSetup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def cluster(tmp_path):
    setup = ClusterSetup(tmp_path)
    try:  # a start that fails half-way must not leave its redis-servers behind
        yield setup.start()
    finally:
        setup.close()


def test_idempotency_rate_limits_and_history_on_a_cluster(cluster, start_gateway) -> None:
    env = {
        "GATEWAY_AUTH": "off",
        "GATEWAY_RATE_LIMIT_STORE": "redis",
        "GATEWAY_RATE_CONNECT": "0.02",  # one token per 50 s: none comes back mid-test
        "GATEWAY_RATE_CONNECT_BURST": "1",
    }
    gateway = start_gateway(cluster.url, env=env)
    channels = [f"clu-{n}" for n in range(6)]  # spread over the nodes' slots
    with httpx.Client(base_url=gateway.url) as http, Publisher(cluster.url) as direct:
        for channel in channels:
            headers = {"content-type": "application/json", "idempotency-key": "k1"}
            ids = {http.post(f"/publish/{channel}", content=b"1", headers=headers).json()["id"]
                   for _ in range(3)}  # fmt: skip
            assert len(ids) == 1  # no CROSSSLOT: the key is in the channel's slot
            assert direct.publish(channel, 1, idempotency_key="k1") in ids
            page = http.get(f"/history/{channel}").json()
            assert [e["id"] for e in page["events"]] == list(ids)
        with http.stream("GET", "/subscribe/clu-0") as first:
            assert first.status_code == 200
        with http.stream("GET", "/subscribe/clu-0") as refused:  # never hangs if allowed
            assert refused.status_code == 429
            assert refused.read() and refused.json()["error"] == "rate_limited"
