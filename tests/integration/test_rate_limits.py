"""Rate limits on real gateways: 429 + Retry-After + our error body; the client address from a
trusted X-Forwarded-For hop count only; buckets shared by two replicas through Redis."""

from __future__ import annotations

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, replicas

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LIMITS = {
    "GATEWAY_AUTH": "off",
    # One token back every 50 s: nothing refills during the module, even on a loaded machine (at
    # 5 s, a starved run once saw a token come back between a test's three requests).
    "GATEWAY_RATE_PUBLISH": "0.02",
    "GATEWAY_RATE_PUBLISH_BURST": "2",
    "GATEWAY_RATE_CONNECT": "0.02",
    "GATEWAY_RATE_CONNECT_BURST": "2",
}


@pytest.fixture(scope="module")
def local(redis_server, tmp_path_factory):
    """Buckets per process; X-Forwarded-For not trusted (the default)."""
    log = tmp_path_factory.mktemp("rate-local") / "gateway.log"
    gateway = GatewayProcess(redis_server.url, log_path=log, env=LIMITS).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def shared(redis_server, tmp_path_factory):
    """Two replicas sharing buckets through Redis, behind one trusted proxy hop."""
    logs = tmp_path_factory.mktemp("rate-shared")
    env = {**LIMITS, "GATEWAY_RATE_LIMIT_STORE": "redis", "GATEWAY_TRUSTED_PROXY_HOPS": "1"}
    with replicas(redis_server.url, logs, env) as gateways:
        yield gateways


def _publish(url: str, channel: str, forwarded: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    return httpx.post(f"{url}/publish/{channel}", content=b"1", headers=headers)


def _open(url: str, forwarded: str | None = None) -> int:
    """Open a stream and hang up at once; its status."""
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    with httpx.stream("GET", url + "/subscribe/rl", headers=headers, timeout=10) as answer:
        if answer.status_code != 200:
            answer.read()
            assert answer.json()["error"] == "rate_limited"
        return answer.status_code


def test_publish_over_the_burst_is_429_with_retry_after(local) -> None:
    assert [_publish(local.url, "rl1").status_code for _ in range(2)] == [202, 202]
    refused = _publish(local.url, "rl1")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 50
    assert (
        refused.json()
        == {
            "error": "rate_limited",
            "detail": refused.json()["detail"],
        }
        and "publish rate limit" in refused.json()["detail"]
    )


def test_connect_over_the_burst_is_429(local) -> None:
    # the publish test above used the publish bucket only: this address' connect bucket is full
    assert [_open(local.url) for _ in range(3)] == [200, 200, 429]


def test_a_spoofed_forwarded_for_does_not_dodge_the_limit(local) -> None:
    codes = [_publish(local.url, "rl2", forwarded=f"203.0.113.{n}").status_code for n in range(3)]
    assert codes[-1] == 429  # one peer, one bucket (burst 2), whatever the header says


def test_replicas_share_buckets_through_redis(shared) -> None:
    one, two = shared
    assert _publish(one.url, "rl3", forwarded="198.51.100.7").status_code == 202
    assert _publish(two.url, "rl3", forwarded="198.51.100.7").status_code == 202
    assert _publish(one.url, "rl3", forwarded="198.51.100.7").status_code == 429
    assert _publish(two.url, "rl3", forwarded="198.51.100.8").status_code == 202  # another client


def test_trusted_hop_picks_the_address_our_proxy_added(shared) -> None:
    one, two = shared
    # What the client wrote (left) changes every time; what our proxy added (right) does not.
    codes = [_open(one.url, f"10.{n}.0.1, 198.51.100.20") for n in range(2)]
    codes.append(_open(two.url, "10.9.9.9, 198.51.100.20"))
    assert codes == [200, 200, 429]
    assert _open(two.url, "198.51.100.21") == 200
