"""The benchmark scenarios (S1-S5, unbatched, soak), each run against one started :class:`Server`.

Every server is fed the same way: one message per ``POST`` to its own HTTP publish endpoint
(NDJSON batches in S5 where the server has them), so no server gets its messages pre-batched.

Every scenario is bounded in connections, messages and wall-clock time, and returns a flat dict
of figures. Server CPU is utime+stime of the server's process tree (workers included) read from
/proc; memory is the tree's RSS. Redis is not counted: it is the same for every server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.perf import pyspy
from tests.perf.publish import PubPlan, start_publisher
from tests.perf.series import Series
from tests.perf.servers import Server
from tests.perf.sse_client import WorkerStats
from tests.perf.stats import Histogram, pct
from tests.perf.util import cpu_seconds, rss_bytes
from tests.perf.workers import WorkerPool


@dataclass
class Scale:
    """Sizes and limits of every scenario; ``quick()`` is the smoke-test scale."""

    client_procs: int = 2
    s1_subs: int = 1000
    s1_seconds: float = 10.0
    s1_max_messages: int = 100_000
    s1_window: int = 20  # messages published but not yet delivered to every subscriber
    s1_connections: int = 8  # keep-alive publishing connections, one request in flight on each
    s1_rate: float = 0.0  # messages/s; 0 = as fast as the window allows
    s1_sample_mask: int = 15  # latency of 1 message in 16: keeps the client lean
    s2_subs: int = 2000
    s3_subs: int = 5000
    s4_channels: int = 1000
    s4_subs_per_channel: int = 2
    s4_rate: float = 2000.0
    s4_seconds: float = 10.0
    s4_connections: int = 32  # keep-alive publishing connections: slow answers don't cap the rate
    s5_seconds: float = 5.0
    s5_max_messages: int = 2_000_000
    s5_batch: int = 100
    unbatched_subs: int = 1000
    unbatched_seconds: float = 10.0
    unbatched_max_messages: int = 100_000
    unbatched_pipeline: int = 32  # requests in flight on the one publishing connection
    unbatched_window: int = 64  # and at most this many published but not yet delivered to all
    unbatched_sample_mask: int = 15
    soak_seconds: float = 300.0
    soak_rate: float = 1000.0
    soak_channels: int = 200
    soak_subs_per_channel: int = 10
    soak_connections: int = 4
    soak_pipeline: int = 8  # requests in flight per publishing connection, at most
    soak_sample_every: float = 5.0  # seconds between RSS/CPU samples
    soak_warmup: float = 60.0  # RSS at this point vs the end tells warm-up from growth
    ready_timeout: float = 60.0
    drain_timeout: float = 30.0
    py_spy: str = ""  # a directory: profile Python servers with py-spy in S1, S3, S4, S5
    settle: float = 1.0  # pause for the server to settle after connections open or close

    @classmethod
    def quick(cls) -> Scale:
        return cls(
            s1_subs=50,
            s1_seconds=3.0,
            s1_max_messages=200,
            s1_window=50,
            s1_sample_mask=0,
            s2_subs=50,
            s3_subs=50,
            s4_channels=10,
            s4_subs_per_channel=2,
            s4_rate=200.0,
            s4_seconds=1.0,
            s5_seconds=1.0,
            s5_max_messages=200,
            s5_batch=20,
            unbatched_subs=50,
            unbatched_seconds=2.0,
            unbatched_max_messages=200,
            unbatched_window=50,
            unbatched_sample_mask=0,
            soak_seconds=2.0,
            soak_rate=200.0,
            soak_channels=10,
            soak_subs_per_channel=2,
            soak_sample_every=0.25,
            soak_warmup=0.5,
            ready_timeout=15.0,
            drain_timeout=5.0,
            settle=0.2,
        )


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    stats = WorkerStats()
    subs_per_channel: dict[int, int] = {}
    distinct = 0
    for report in reports:
        s: WorkerStats = report["stats"]
        for name in ("events", "duplicates", "comments", "bad_frames", "unexpected_close"):
            setattr(stats, name, getattr(stats, name) + getattr(s, name))
        stats.http_errors += s.http_errors
        stats.connect_errors += s.connect_errors
        stats.error_sample = stats.error_sample or s.error_sample
        stats.latency.merge(s.latency)
        distinct += sum(report["distinct"].values())
        for ch, n in report["subs_per_channel"].items():
            subs_per_channel[ch] = subs_per_channel.get(ch, 0) + n
    return {"stats": stats, "distinct": distinct, "subs_per_channel": subs_per_channel}


def _latency(hist: Histogram) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in (50, 90, 99, 99.9, 100):
        value = hist.percentile(p)
        name = "max_ms" if p == 100 else f"p{p:g}_ms".replace(".", "_")
        out[name] = None if value is None else value / 1000
    return out


def _drain(pool: WorkerPool, target: int, limit: float) -> None:
    """Wait until ``target`` events arrived, progress stalls for 2 s, or ``limit`` passes."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_events = pool.events()
        if now_events >= target:
            return
        if now_events != last:
            last, last_change = now_events, time.monotonic()
        elif time.monotonic() - last_change > 2.0:
            return
        time.sleep(0.02)


def fanout(
    server: Server, scale: Scale, *, tag: str, channels: list[str], subs_per_channel: int,
    mode: str, rate: float, seconds: float, max_messages: int, window: int = 0,
    batch: int = 1, concurrency: int = 4, pipeline: int = 1, sample_mask: int = 0,
    series_every: float = 0.0, warmup: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """Subscribers on ``channels``, one publisher, then count and time what arrived."""
    subs = [
        (server.sub_path.format(ch=ch), i) for i, ch in enumerate(channels)
        for _ in range(subs_per_channel)
    ]  # fmt: skip
    pool = WorkerPool(
        "127.0.0.1", server.port, subs, scale.client_procs, scale.ready_timeout, sample_mask
    )
    with pool:
        ready = _merge(pool.wait_ready())
        connected = sum(ready["subs_per_channel"].values())
        time.sleep(0.2)  # let the last subscriptions settle at the server
        plan = PubPlan(
            mode, "127.0.0.1", server.port, server.redis_url, server.pub_path, channels,
            max_messages, seconds, rate=rate, window=window,
            fanout=max(1.0, connected / len(channels)), concurrency=concurrency, batch=batch,
            pipeline=pipeline,
        )  # fmt: skip
        pids = server.pids()
        profilers = pyspy.start(pids, scale.py_spy, f"{server.name}-{tag}", seconds)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        proc, pipe = start_publisher(plan, pool.progress)
        series = Series(pids, series_every or seconds + 60)
        pub = series.wait(pipe, seconds + 60) or {"published": [], "errors": -1}
        proc.join(5)
        pyspy.finish(profilers)
        published = pub["published"]
        expected = sum(
            published[ch] * n for ch, n in ready["subs_per_channel"].items() if ch < len(published)
        )
        _drain(pool, expected, scale.drain_timeout)
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        done = _merge(pool.stop())
    stats: WorkerStats = done["stats"]
    cpu = cpu1 - cpu0
    delivered = done["distinct"]
    return {
        "subscribers": len(subs),
        "channels": len(channels),
        "connected": connected,
        "published": sum(published),
        "publish_errors": pub.get("errors", 0),
        "publish_error": pub.get("error_sample", ""),
        "publish_seconds": pub.get("seconds"),
        "expected": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "duplicated": stats.duplicates,
        "unexpected_close": stats.unexpected_close,
        "subscriber_error": stats.error_sample,
        "server_cpu_s": cpu,
        "wall_s": t1 - t0,
        "server_cpu_pct": 100 * cpu / (t1 - t0),
        "deliveries_per_cpu_s": delivered / cpu if cpu > 0 else None,
        "deliveries_per_s": delivered / (t1 - t0),
        "publish_rate": sum(published) / pub["seconds"] if pub.get("seconds") else None,
        **_latency(stats.latency),
        **(series.report(warmup) if series_every else {}),
    }


def s1_saturation(server: Server, scale: Scale) -> dict[str, Any]:
    return fanout(
        server, scale, tag="s1", channels=["s1"], subs_per_channel=scale.s1_subs, mode="http",
        rate=scale.s1_rate, seconds=scale.s1_seconds, max_messages=scale.s1_max_messages,
        window=scale.s1_window, concurrency=scale.s1_connections,
        sample_mask=scale.s1_sample_mask,
    )  # fmt: skip


def unbatched(server: Server, scale: Scale) -> dict[str, Any]:
    """One producer: one keep-alive connection, one message per POST, pipelined."""
    return fanout(
        server, scale, tag="unbatched", channels=["unbatched"],
        subs_per_channel=scale.unbatched_subs, mode="http", rate=0.0,
        seconds=scale.unbatched_seconds, max_messages=scale.unbatched_max_messages,
        window=scale.unbatched_window, concurrency=1, pipeline=scale.unbatched_pipeline,
        sample_mask=scale.unbatched_sample_mask,
    )  # fmt: skip


def soak(server: Server, scale: Scale) -> dict[str, Any]:
    """A steady moderate load for minutes: tail latency, CPU, and RSS over time."""
    channels = [f"soak-{i}" for i in range(scale.soak_channels)]
    return fanout(
        server, scale, tag="soak", channels=channels,
        subs_per_channel=scale.soak_subs_per_channel, mode="http", rate=scale.soak_rate,
        seconds=scale.soak_seconds, max_messages=int(scale.soak_rate * scale.soak_seconds),
        concurrency=scale.soak_connections, pipeline=scale.soak_pipeline,
        series_every=scale.soak_sample_every, warmup=scale.soak_warmup,
    )  # fmt: skip


def s4_latency(server: Server, scale: Scale) -> dict[str, Any]:
    channels = [f"s4-{i}" for i in range(scale.s4_channels)]
    return fanout(
        server, scale, tag="s4", channels=channels, subs_per_channel=scale.s4_subs_per_channel,
        mode="http", rate=scale.s4_rate, seconds=scale.s4_seconds,
        max_messages=int(scale.s4_rate * scale.s4_seconds), concurrency=scale.s4_connections,
    )  # fmt: skip


def s5_publish(server: Server, scale: Scale) -> dict[str, Any]:
    """Publish throughput over HTTP to one channel with one subscriber: single vs NDJSON."""
    out: dict[str, Any] = {}
    modes = [("single", "http", 1, 8)]
    if server.ndjson:
        modes.append(("ndjson", "ndjson", scale.s5_batch, 4))
    for label, mode, batch, concurrency in modes:
        got = fanout(
            server, scale, tag="s5", channels=[f"s5-{label}"], subs_per_channel=1, mode=mode,
            rate=0.0, seconds=scale.s5_seconds, max_messages=scale.s5_max_messages,
            window=10**12, batch=batch, concurrency=concurrency,
        )  # fmt: skip
        cpu = got["server_cpu_s"]
        out[f"{label}_msgs_per_s"] = got["publish_rate"]
        out[f"{label}_msgs_per_cpu_s"] = got["published"] / cpu if cpu > 0 else None
        out[f"{label}_published"] = got["published"]
        out[f"{label}_lost"] = got["lost"]
        out[f"{label}_duplicated"] = got["duplicated"]
        out[f"{label}_publish_errors"] = got["publish_errors"]
        out[f"{label}_publish_error"] = got["publish_error"]
    return out


def _open(server: Server, scale: Scale, n: int, channel: str) -> WorkerPool:
    subs = [(server.sub_path.format(ch=channel), 0)] * n
    return WorkerPool("127.0.0.1", server.port, subs, scale.client_procs, scale.ready_timeout)


def s2_idle_memory(server: Server, scale: Scale) -> dict[str, Any]:
    with _open(server, scale, 20, "s2-warmup") as pool:  # first-use allocations, imports
        pool.wait_ready()
        pool.stop()
    time.sleep(scale.settle)
    pids = server.pids()
    before = rss_bytes(pids)
    with _open(server, scale, scale.s2_subs, "s2") as pool:
        ready = _merge(pool.wait_ready())
        time.sleep(1.5 * scale.settle)
        after = rss_bytes(server.pids())
        pool.stop()
    connected = sum(ready["subs_per_channel"].values())
    return {
        "subscribers": scale.s2_subs,
        "connected": connected,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_connection": (after - before) / 1024 / connected if connected else None,
    }


def s3_connect(server: Server, scale: Scale) -> dict[str, Any]:
    profilers = pyspy.start(server.pids(), scale.py_spy, f"{server.name}-s3", 10)
    with _open(server, scale, scale.s3_subs, "s3") as pool:
        reports = pool.wait_ready()
        start = pool.start_ns
        pyspy.finish(profilers)
        pool.stop()
    merged = _merge(reports)
    t_headers = [r["t_last_headers"] for r in reports if r["t_last_headers"]]
    t_first = [r["t_last_first_byte"] for r in reports if r["t_last_first_byte"]]
    each = [(t - start) / 1e9 for r in reports for t in r["t_headers"]]
    stats: WorkerStats = merged["stats"]
    return {
        "subscribers": scale.s3_subs,
        "connected": sum(merged["subs_per_channel"].values()),
        "all_headers_s": (max(t_headers) - start) / 1e9 if t_headers else None,
        "all_first_bytes_s": (max(t_first) - start) / 1e9 if t_first else None,
        "median_headers_s": pct(each, 50),
        "errors": stats.connect_errors + stats.http_errors + stats.unexpected_close,
        "error": stats.error_sample,
    }


SCENARIOS = {
    "s2": s2_idle_memory,
    "s3": s3_connect,
    "s1": s1_saturation,
    "s4": s4_latency,
    "s5": s5_publish,
    "unbatched": unbatched,
    "soak": soak,
}
