"""Rate limits: a token bucket per publisher and per connecting address.

* Publishing: one bucket per token subject (``sub``), or per client address for anonymous
  callers and tokens without a subject (``GATEWAY_RATE_PUBLISH`` / ``_BURST``).
* Opening streams: one bucket per client address (``GATEWAY_RATE_CONNECT`` / ``_BURST``); the
  address comes from :func:`gateway.client_address.client_address`.

A bucket holds up to ``burst`` tokens, refills at ``rate`` per second, and each request takes
one; an empty bucket answers 429 with ``Retry-After`` (whole seconds until a token is back).

Buckets live in the process by default (N replicas then allow N times the rate, which is what
per-replica limits mean), kept to ``GATEWAY_RATE_LIMIT_MAX_KEYS`` buckets: past it the least
recently created is dropped, which hands that key a full bucket again. ``GATEWAY_RATE_LIMIT_STORE
=redis`` shares them across replicas through one small Lua script per check (Redis' own clock,
so replicas need no synchronised clocks). If Redis cannot answer, the check lets the request
through and logs it: a limiter must not turn a Redis outage into a second one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.exceptions
from starlette.types import Scope

from gateway.auth.rights import Grant
from gateway.client_address import client_address
from gateway.errors import RateLimited
from gateway.settings import Settings
from publisher.connect import async_client, parse_redis_url

__all__ = ["Buckets", "LocalBuckets", "Rate", "RateLimits", "RedisBuckets"]

log = logging.getLogger("gateway.ratelimit")


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: int


class Buckets(Protocol):
    async def take(self, key: str) -> float:
        """Take a token: 0.0 when there was one, else the seconds until one is back."""


class LocalBuckets:
    """This process' buckets: ``key -> (tokens, when they were counted)``."""

    def __init__(
        self, rate: Rate, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}

    def take_now(self, key: str) -> float:
        now = self._clock()
        state = self._state.get(key)
        if state is None:
            tokens = float(self._rate.burst)
            if len(self._state) >= self._max_keys:
                del self._state[next(iter(self._state))]  # the oldest bucket
        else:
            elapsed = now - state[1]
            tokens = min(float(self._rate.burst), state[0] + elapsed * self._rate.per_second)
        if tokens < 1.0:
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self._rate.per_second
        self._state[key] = (tokens - 1.0, now)
        return 0.0

    async def take(self, key: str) -> float:
        return self.take_now(key)

    def __len__(self) -> int:
        return len(self._state)


# KEYS[1] = the bucket (a hash: t = tokens, s = when counted, ms). ARGV = rate/s, burst.
# Returns 0, or the ms until a token is back. The bucket expires once it would be full anyway.
TOKEN_BUCKET_SCRIPT = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil or stamp == nil then tokens, stamp = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""

REDIS_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)


class RedisBuckets:
    """Buckets shared by every replica, one Redis hash each (``<prefix>rate:{<name>:<key>}``)."""

    def __init__(self, client: Any, rate: Rate, name: str, key_prefix: str) -> None:
        self._script = client.register_script(TOKEN_BUCKET_SCRIPT)
        self._args = [repr(rate.per_second), rate.burst]
        self._prefix = f"{key_prefix}rate:{{{name}:"

    async def take(self, key: str) -> float:
        try:
            wait_ms = await self._script(keys=[f"{self._prefix}{key}}}"], args=self._args)
        except REDIS_ERRORS as exc:
            log.warning("rate limit not checked, redis did not answer: %s", exc)
            return 0.0
        return int(wait_ms) / 1000.0


class RateLimits:
    """The two limits a request may meet; either may be off (``None``)."""

    def __init__(
        self,
        publish: Buckets | None,
        connect: Buckets | None,
        trusted_hops: int = 0,
        client: Any = None,
    ) -> None:
        self.publish = publish
        self.connect = connect
        self.trusted_hops = trusted_hops
        self._client = client  # the Redis client shared buckets use, closed with us

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        rates = {
            "publish": Rate(settings.rate_publish, settings.rate_publish_burst),
            "connect": Rate(settings.rate_connect, settings.rate_connect_burst),
        }
        wanted = {name: rate for name, rate in rates.items() if rate.per_second > 0}
        client = None
        made: dict[str, Buckets] = {}
        if wanted and settings.rate_limit_store == "redis" and settings.redis_url is not None:
            target = parse_redis_url(settings.redis_url)
            client = async_client(target, socket_timeout=settings.redis_timeout)
            for name, rate in wanted.items():
                made[name] = RedisBuckets(client, rate, name, settings.key_prefix)
        else:
            for name, rate in wanted.items():
                made[name] = LocalBuckets(rate, settings.rate_limit_max_keys)
        hops = settings.trusted_proxy_hops
        return cls(made.get("publish"), made.get("connect"), hops, client)

    async def check_publish(self, scope: Scope, grant: Grant) -> None:
        """Raise RateLimited when this caller's publish bucket is empty."""
        if self.publish is None:
            return
        if grant.authenticated and grant.subject:
            key = "sub:" + grant.subject[:256]
        else:
            key = "addr:" + client_address(scope, self.trusted_hops)
        await _take(self.publish, key, "publish")

    async def check_connect(self, scope: Scope) -> None:
        """Raise RateLimited when this address opens streams too fast."""
        if self.connect is not None:
            key = "addr:" + client_address(scope, self.trusted_hops)
            await _take(self.connect, key, "connect")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _take(buckets: Buckets, key: str, what: str) -> None:
    wait = await buckets.take(key)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(f"{what} rate limit reached; retry in {seconds}s", seconds)
