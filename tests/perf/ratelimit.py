"""What a rate-limit check costs per request: ``python -m tests.perf.ratelimit``.

Prints, for the publish check as the request path calls it (``RateLimits.check_publish``): off,
per-process buckets (1000 clients by address, and behind one trusted X-Forwarded-For hop), and
buckets shared through a real redis-server on loopback (one script call per request, awaited
one after another as concurrent requests would not be: the worst case). Figures only; this
machine is shared, so compare the lines of one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import redis.asyncio

from gateway.auth.rights import Grant
from gateway.ratelimit import LocalBuckets, Rate, RateLimits, RedisBuckets
from tests.support.redis_server import RedisServer

GRANT = Grant.everything()
NEVER_EMPTY = Rate(per_second=1e9, burst=1_000_000)


def _scopes(forwarded: bool) -> list[dict[str, Any]]:
    scopes = []
    for n in range(1000):
        address = f"10.0.{n // 250}.{n % 250}"
        headers = [(b"x-forwarded-for", f"{address}, 192.0.2.1".encode())] if forwarded else []
        scopes.append({"client": ("192.0.2.1" if forwarded else address, 4000), "headers": headers})
    return scopes


async def _per_check(limits: RateLimits, scopes: list[dict[str, Any]], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await limits.check_publish(scopes[i % len(scopes)], GRANT)
    return (time.perf_counter() - started) / n * 1e6


async def main(n: int, n_redis: int) -> None:
    plain, forwarded = _scopes(False), _scopes(True)
    local = LocalBuckets(NEVER_EMPTY, 100_000)
    rows = [
        ("off", await _per_check(RateLimits(None, None), plain, n)),
        ("process buckets", await _per_check(RateLimits(local, None), plain, n)),
        ("process, 1 trusted hop", await _per_check(RateLimits(local, None, 2), forwarded, n)),
    ]
    server = RedisServer().start()
    try:
        client = redis.asyncio.Redis(port=server.port)
        shared = RedisBuckets(client, NEVER_EMPTY, "publish", "bench:")
        rows.append(("redis buckets", await _per_check(RateLimits(shared, None), plain, n_redis)))
        await client.aclose()
    finally:
        server.close()
    for name, micros in rows:
        print(f"{name:24s} {micros:8.2f} us per publish check")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--redis-n", type=int, default=5_000)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.redis_n))
