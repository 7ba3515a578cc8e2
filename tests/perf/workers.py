"""Subscriber worker processes: each opens its share of SSE connections and counts what arrives.

The main process forks the workers with a plan (which paths, which channel index each), a start
time on ``CLOCK_MONOTONIC`` and a pipe. A worker reports ``ready`` once every connection got its
first body bytes (or failed), then keeps counting until the main process says ``stop`` and
sends back its figures. Progress (events received) goes to a shared array the main process
polls, so the publisher can pace itself on delivery and the drain knows when to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tests.perf.sse_client import Subscriber, WorkerStats
from tests.perf.util import raise_nofile, use_uvloop

CONNECTS_IN_FLIGHT = 256


@dataclass
class Plan:
    host: str
    port: int
    subs: list[tuple[str, int]]  # (path, channel index)
    start_ns: int
    ready_timeout: float
    sample_mask: int = 0  # record the latency of messages whose seq & mask == 0


class Worker:
    def __init__(self, plan: Plan, slot: int, progress: Any) -> None:
        self.plan = plan
        self.slot = slot
        self.progress = progress
        self.stats = WorkerStats()
        self.sample_mask = plan.sample_mask
        self.subs: list[Subscriber] = []
        self.pending = len(plan.subs)
        self.all_ready = asyncio.get_running_loop().create_future()
        self.headers_done = 0
        self.t_last_headers = 0
        self.t_last_first_byte = 0

    # callbacks from Subscriber
    def headers(self, sub: Subscriber) -> None:
        self.headers_done += 1
        self.t_last_headers = max(self.t_last_headers, sub.t_headers)

    def first_byte(self, sub: Subscriber) -> None:
        self.t_last_first_byte = max(self.t_last_first_byte, sub.t_first_byte)
        self._settled()

    def fail(self, sub: Subscriber, kind: str, text: str) -> None:
        if kind == "http":
            self.stats.http_errors += 1
        elif sub.state != 2:
            self.stats.unexpected_close += 1
        self.stats.error_sample = self.stats.error_sample or f"{kind}: {text}"
        if not sub.t_first_byte:
            self._settled()

    def _settled(self) -> None:
        self.pending -= 1
        if self.pending <= 0 and not self.all_ready.done():
            self.all_ready.set_result(None)

    async def open_all(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        host = f"{self.plan.host}:{self.plan.port}"

        async def one(path: str, channel: int) -> None:
            sub = Subscriber(self, host, path, channel)
            self.subs.append(sub)
            async with gate:
                try:
                    await loop.create_connection(lambda: sub, self.plan.host, self.plan.port)
                except OSError as exc:
                    self.stats.connect_errors += 1
                    self.stats.error_sample = self.stats.error_sample or f"connect: {exc!r}"
                    sub.closing = True
                    self._settled()

        delay = (self.plan.start_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        if not self.plan.subs:
            self.all_ready.set_result(None)
        await asyncio.gather(*(one(path, ch) for path, ch in self.plan.subs))

    async def publish_progress(self) -> None:
        while True:
            self.progress[self.slot] = self.stats.events
            await asyncio.sleep(0.02)

    def report(self) -> dict[str, Any]:
        distinct: dict[int, int] = {}
        per_channel_subs: dict[int, int] = {}
        connected = 0
        for sub in self.subs:
            distinct[sub.channel] = distinct.get(sub.channel, 0) + sub.distinct
            if sub.t_headers and not sub.dropped:
                per_channel_subs[sub.channel] = per_channel_subs.get(sub.channel, 0) + 1
                connected += 1
        s = self.stats
        s.comments = sum(sub.sse.comments for sub in self.subs)
        return {
            "distinct": distinct,
            "subs_per_channel": per_channel_subs,
            "connected": connected,
            "headers": self.headers_done,
            "t_last_headers": self.t_last_headers,
            "t_last_first_byte": self.t_last_first_byte,
            "t_headers": sorted(sub.t_headers for sub in self.subs if sub.t_headers),
            "stats": s,
        }


async def _run(plan: Plan, slot: int, progress: Any, pipe: Connection) -> None:
    worker = Worker(plan, slot, progress)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: stop.done() or stop.set_result(pipe.recv()))
    ticker = asyncio.create_task(worker.publish_progress())
    opener = asyncio.create_task(worker.open_all())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(worker.all_ready), plan.ready_timeout)
    pipe.send(("ready", worker.report()))
    await stop
    for sub in worker.subs:
        sub.close()
    opener.cancel()
    ticker.cancel()
    worker.progress[slot] = worker.stats.events
    pipe.send(("done", worker.report()))


def worker_main(plan: Plan, slot: int, progress: Any, pipe: Connection) -> None:
    raise_nofile()
    use_uvloop()
    try:
        asyncio.run(_run(plan, slot, progress, pipe))
    finally:
        pipe.close()
        os._exit(0)  # skip interpreter teardown of thousands of transports


class WorkerPool:
    """Fork ``procs`` workers, split ``subs`` round-robin between them; context-managed."""

    def __init__(
        self,
        host: str,
        port: int,
        subs: list[tuple[str, int]],
        procs: int,
        ready_timeout: float,
        sample_mask: int = 0,
    ) -> None:
        ctx = mp.get_context("fork")
        procs = max(1, min(procs, len(subs) or 1))
        self.progress = ctx.RawArray("q", procs)
        start = time.monotonic_ns() + 300_000_000
        self.start_ns = start
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            plan = Plan(host, port, subs[i::procs], start, ready_timeout, sample_mask)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(plan, i, self.progress, child))
            proc.daemon = True
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.ready_timeout = ready_timeout

    def wait_ready(self) -> list[dict[str, Any]]:
        return [self._recv(pipe, "ready", self.ready_timeout + 10) for pipe in self.pipes]

    def events(self) -> int:
        return int(sum(self.progress))

    def stop(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send("stop")
        return [self._recv(pipe, "done", 30) for pipe in self.pipes]

    @staticmethod
    def _recv(pipe: Connection, kind: str, timeout: float) -> dict[str, Any]:
        if not pipe.poll(timeout):
            raise TimeoutError(f"subscriber worker sent no {kind!r} within {timeout:.0f} s")
        got, report = pipe.recv()
        assert got == kind, got
        return dict(report)

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        for pipe in self.pipes:
            pipe.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
