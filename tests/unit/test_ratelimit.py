"""Token buckets (gateway.ratelimit) and the client address they are keyed by."""

from __future__ import annotations

import fakeredis
import pytest

from gateway.auth.rights import Grant
from gateway.client_address import client_address
from gateway.errors import RateLimited
from gateway.ratelimit import LocalBuckets, Rate, RateLimits, RedisBuckets

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(Rate(per_second=2.0, burst=3), max_keys=10, clock=clock)
    assert [buckets.take_now("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take_now("a") == pytest.approx(0.5)  # one token back in 1/rate seconds
    assert buckets.take_now("b") == 0.0  # every key has its own bucket
    clock.now += 0.5
    assert buckets.take_now("a") == 0.0
    assert buckets.take_now("a") == pytest.approx(0.5)
    clock.now += 60
    assert [buckets.take_now("a") for _ in range(4)][-1] > 0  # refills to the burst, no more


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    buckets = LocalBuckets(Rate(per_second=1.0, burst=1), max_keys=10, clock=clock)
    assert buckets.take_now("a") == 0.0
    for _ in range(5):
        assert buckets.take_now("a") > 0
    clock.now += 1.0
    assert buckets.take_now("a") == 0.0


def test_bucket_count_is_bounded_by_dropping_the_oldest() -> None:
    buckets = LocalBuckets(Rate(per_second=1.0, burst=1), max_keys=3, clock=Clock())
    for key in "abcde":
        buckets.take_now(key)
    assert len(buckets) == 3
    assert buckets.take_now("a") == 0.0  # dropped: a full bucket again
    assert buckets.take_now("e") > 0


async def test_redis_buckets_share_one_bucket_between_replicas() -> None:
    server = fakeredis.FakeServer()
    one = RedisBuckets(fakeredis.FakeAsyncRedis(server=server), Rate(1.0, 2), "publish", "sse:")
    two = RedisBuckets(fakeredis.FakeAsyncRedis(server=server), Rate(1.0, 2), "publish", "sse:")
    assert await one.take("sub:u") == 0.0
    assert await two.take("sub:u") == 0.0
    wait = await one.take("sub:u")
    assert 0 < wait <= 1.0
    assert await two.take("sub:v") == 0.0
    ttl = await fakeredis.FakeAsyncRedis(server=server).pttl("sse:rate:{publish:sub:u}")
    assert 0 < ttl <= 3000  # gone once it would be full anyway


def _scope(peer: str, *forwarded: str) -> dict[str, object]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234), "headers": headers}


def test_forwarded_for_is_ignored_unless_proxies_are_trusted() -> None:
    scope = _scope("127.0.0.1", "203.0.113.9")
    assert client_address(scope, 0) == "127.0.0.1"  # a spoofed header moves nobody


def test_forwarded_for_takes_the_entry_our_proxies_added() -> None:
    scope = _scope("10.0.0.2", "6.6.6.6, 203.0.113.9", "10.0.0.1")
    assert client_address(scope, 1) == "10.0.0.1"
    assert client_address(scope, 2) == "203.0.113.9"  # what the client wrote is never used
    assert client_address(scope, 4) == "10.0.0.2"  # fewer entries than hops: the peer


async def test_publish_is_limited_per_subject_and_anonymous_per_address() -> None:
    limits = RateLimits(LocalBuckets(Rate(1.0, 1), 100, clock=Clock()), None)
    alice = Grant(publish=("*",), authenticated=True, subject="alice")
    await limits.check_publish(_scope("10.0.0.1"), alice)
    await limits.check_publish(_scope("10.0.0.9"), Grant.everything())  # anonymous: by address
    with pytest.raises(RateLimited) as refused:
        await limits.check_publish(_scope("10.0.0.2"), alice)  # same subject, other address
    assert refused.value.status == 429 and refused.value.retry_after == 1
    await limits.check_connect(_scope("10.0.0.1"))  # connect limit off


async def test_connect_is_limited_per_address() -> None:
    limits = RateLimits(None, LocalBuckets(Rate(0.5, 1), 100, clock=Clock()))
    await limits.check_connect(_scope("10.0.0.1"))
    with pytest.raises(RateLimited) as refused:
        await limits.check_connect(_scope("10.0.0.1"))
    assert refused.value.retry_after == 2
    await limits.check_connect(_scope("10.0.0.3"))
