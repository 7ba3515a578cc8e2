"""What keeping subscriber counts and presence in Redis costs per connect and disconnect.

    python -m tests.perf.presence_cost [--streams 300] [--channels 1]

Starts its own redis-server and one gateway (JWT auth on, so every stream has a token subject),
then opens and closes ``--streams`` streams twice: one at a time with a pause longer than the
coalescing delay (the worst case: every connect and every disconnect is its own write), and all
at once (a reconnect storm: writes coalesce). Redis' own ``INFO commandstats`` counts the calls
of the presence script and the microseconds Redis spent executing them (``usec``: wall time inside
the command, so it grows when the machine is busy); the gateway process' CPU
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

from gateway.broker import create_broker
from gateway.control import Control
from gateway.hub import Hub
from gateway.presence import FLUSH_DELAY, Presence
from gateway.presence_store import PresenceStore
from gateway.settings import Settings
from gateway.subscription import Subscription
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


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        # Kept: a collected chunk iterator is finalized, which closes the response.
        self.chunks = response.aiter_raw()

    async def aclose(self) -> None:
        await self.response.aclose()


async def open_stream(http: httpx.AsyncClient, url: str, sub: str) -> Stream:
    request = http.build_request("GET", url, headers={"authorization": "Bearer " + token(sub)})
    stream = Stream(await http.send(request, stream=True))
    await anext(stream.chunks)  # the preamble: the stream has joined
    return stream


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
        f"Redis time {usec / max(calls, 1):.1f} µs per call "
        f"({usec / events:.1f} µs per connect/disconnect); "
        f"gateway CPU {cpu / events * 1e6:.0f} µs per connect/disconnect (all of it, HTTP included)"
    )


async def in_process(redis: RedisServer, rounds: int = 2000) -> None:
    """The gateway's own share, without HTTP: the hub watcher's bookkeeping per connect and
    disconnect, and the client-side CPU of one script call (redis-py, hiredis)."""
    settings = Settings(redis_url=redis.url, auth="off")
    broker = create_broker(settings)
    hub = Hub(broker, unsubscribe_delay=1.0, replay_max=10)
    store = PresenceStore(broker.client, "cost:", "bench", ttl=15.0)
    presence = Presence(hub, store, Control(hub, broker), ttl=15.0, events=True)
    subscriptions = [
        Subscription(("c",), {"c": "0-0"}, max_messages=10, max_bytes=1 << 16, subject=f"u{n}")
        for n in range(rounds)
    ]
    started = time.process_time()
    for subscription in subscriptions:
        presence.joined(subscription)
        presence.left(subscription)
    watcher = (time.process_time() - started) / rounds
    redis.client().config_resetstat()
    started = time.process_time()
    for n in range(rounds):  # one subject arrives, the previous one leaves
        await store.write("c", 1, {f"u{n}": 1}, [f"u{n - 1}"])
    client = (time.process_time() - started) / rounds
    _, write_usec = script_stats(redis)
    redis.client().config_resetstat()
    trivial = broker.client.register_script("return 1")
    started = time.process_time()
    for _ in range(rounds):
        await trivial(keys=["c"], args=[])
    floor = (time.process_time() - started) / rounds
    _, floor_usec = script_stats(redis)
    await broker.close()
    print(
        f"in-process: hub watcher {watcher * 1e6:.1f} µs CPU per connect+disconnect pair; "
        f"{client * 1e6:.0f} µs gateway CPU and {write_usec / rounds:.1f} µs Redis time per "
        "presence script call, back to back; "
        f"for scale, a script that only returns 1: {floor * 1e6:.0f} µs client CPU, "
        f"{floor_usec / rounds:.1f} µs Redis time per call"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    redis = RedisServer().start()
    env = {"GATEWAY_JWT_SECRET": SECRET, "GATEWAY_LOG_LEVEL": "warning"}
    gateway = GatewayProcess(redis.url, env=env).start(wait_ready=False)
    gateway.wait_ready(60)  # a shared machine may be slow to start it
    try:
        urls = [f"{gateway.url}/subscribe/cost-{n % args.channels}" for n in range(args.streams)]
        for mode in ("paced", "storm"):
            await measure(redis, gateway, mode, urls)
        await in_process(redis)
    finally:
        gateway.stop()
        redis.close()


if __name__ == "__main__":
    asyncio.run(main())
