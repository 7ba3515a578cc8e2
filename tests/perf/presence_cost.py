"""What keeping subscriber counts and presence in Redis costs per connect and disconnect.

    python -m tests.perf.presence_cost [--streams 300] [--channels 1]

Starts its own redis-server and one gateway (JWT auth on, so every stream has a token subject),
then opens and closes ``--streams`` streams twice: one at a time with a pause longer than the
coalescing delay (the worst case: every connect and every disconnect is its own write), and all
at once (a reconnect storm: writes coalesce). Redis' own ``INFO commandstats`` counts the calls
of the presence script and the CPU microseconds Redis spent in them; the gateway process' CPU
time is read from /proc. Figures are printed, never asserted (this machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from typing import Any

import httpx
import jwt

from gateway.presence import FLUSH_DELAY
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

SECRET = secrets.token_urlsafe(48)


def token(sub: str) -> str:
    claims = {"sub": sub, "exp": int(time.time()) + 600, "sse": {"subscribe": ["*"]}}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def script_stats(redis: RedisServer) -> tuple[int, float]:
    """(calls, total µs) of EVALSHA/EVAL - the presence scripts are this gateway's only ones
    here (nothing publishes during the run)."""
    stats: dict[str, Any] = redis.client().info("commandstats")
    calls, usec = 0, 0.0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            calls += int(stats[name]["calls"])
            usec += float(stats[name]["usec"])
    return calls, usec


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_stream(http: httpx.AsyncClient, url: str, sub: str) -> httpx.Response:
    request = http.build_request("GET", url, headers={"authorization": "Bearer " + token(sub)})
    response = await http.send(request, stream=True)
    await anext(response.aiter_raw())  # the preamble: the stream has joined
    return response


async def paced(http: httpx.AsyncClient, urls: list[str]) -> None:
    responses = []
    for n, url in enumerate(urls):
        responses.append(await open_stream(http, url, f"user-{n}"))
        await asyncio.sleep(FLUSH_DELAY * 3)
    for response in responses:
        await response.aclose()
        await asyncio.sleep(FLUSH_DELAY * 3)


async def storm(http: httpx.AsyncClient, urls: list[str]) -> None:
    responses = await asyncio.gather(
        *(open_stream(http, url, f"user-{n}") for n, url in enumerate(urls))
    )
    await asyncio.sleep(FLUSH_DELAY * 4)
    await asyncio.gather(*(response.aclose() for response in responses))


async def measure(redis: RedisServer, gateway: GatewayProcess, mode: str, urls: list[str]) -> None:
    assert gateway.proc is not None
    limits = httpx.Limits(max_connections=len(urls) + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        redis.client().config_resetstat()
        cpu = cpu_seconds(gateway.proc.pid)
        started = time.monotonic()
        await (paced if mode == "paced" else storm)(http, urls)
        await asyncio.sleep(FLUSH_DELAY * 6)  # the last leave is written
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(gateway.proc.pid) - cpu
    calls, usec = script_stats(redis)
    events = 2 * len(urls)  # one connect and one disconnect per stream
    print(
        f"{mode:>6}: {len(urls)} streams, {events} connects+disconnects in {elapsed:.1f}s: "
        f"{calls} presence script calls ({calls / events:.2f} per connect/disconnect), "
        f"Redis CPU {usec / max(calls, 1):.1f} µs per call "
        f"({usec / events:.1f} µs per connect/disconnect); "
        f"gateway CPU {cpu / events * 1e6:.0f} µs per connect/disconnect (all of it, HTTP included)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    redis = RedisServer().start()
    env = {"GATEWAY_JWT_SECRET": SECRET, "GATEWAY_LOG_LEVEL": "warning"}
    gateway = GatewayProcess(redis.url, env=env).start()
    try:
        urls = [f"{gateway.url}/subscribe/cost-{n % args.channels}" for n in range(args.streams)]
        for mode in ("paced", "storm"):
            await measure(redis, gateway, mode, urls)
    finally:
        gateway.stop()
        redis.close()


if __name__ == "__main__":
    asyncio.run(main())
