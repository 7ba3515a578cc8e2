"""Server RSS and CPU sampled over a long run, so warm-up can be told from growth.

A process's RSS rises while it warms up (allocator arenas, first-use caches, buffers sized by
the load) and then should stay flat. One reading at the end cannot tell the two apart, so the
soak samples the server's process tree every few seconds and reports RSS at the end of a
warm-up span beside RSS at the end, and the least-squares slope of what follows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tests.perf.util import cpu_seconds, rss_bytes


@dataclass
class Series:
    pids: list[int]
    every: float
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (s, MiB, CPU s)

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        self.samples.append((round(t, 2), rss_bytes(self.pids) / 2**20, cpu_seconds(self.pids)))

    def wait(self, pipe: Connection, limit: float) -> Any:
        """The publisher's report (or ``None`` after ``limit`` s), sampling while it runs."""
        deadline = time.monotonic() + limit
        self.sample()
        while time.monotonic() < deadline:
            if pipe.poll(min(self.every, max(0.0, deadline - time.monotonic()))):
                self.sample()
                return pipe.recv()
            self.sample()
        return None

    def report(self, warmup: float) -> dict[str, Any]:
        """RSS at the start, after ``warmup`` s and at the end; slope and CPU after warm-up."""
        if len(self.samples) < 2:
            return {}
        warm = next((s for s in self.samples if s[0] >= warmup), self.samples[-1])
        after = [s for s in self.samples if s[0] >= warm[0]]
        end = self.samples[-1]
        span = end[0] - warm[0]
        return {
            "rss_start_mib": round(self.samples[0][1], 2),
            "rss_warm_mib": round(warm[1], 2),
            "rss_end_mib": round(end[1], 2),
            "rss_max_mib": round(max(s[1] for s in self.samples), 2),
            "warmup_s": warm[0],
            "rss_growth_after_warmup_mib": round(end[1] - warm[1], 2),
            "rss_slope_mib_per_min": _slope([(s[0], s[1]) for s in after], 60.0),
            "cpu_pct_warmup": _pct(self.samples[0], warm),
            "cpu_pct_after_warmup": _pct(warm, end) if span > 0 else None,
            "rss_series": [[s[0], round(s[1], 2)] for s in self.samples],
        }


def _pct(a: tuple[float, float, float], b: tuple[float, float, float]) -> float | None:
    return round(100 * (b[2] - a[2]) / (b[0] - a[0]), 1) if b[0] > a[0] else None


def _slope(points: list[tuple[float, float]], per: float) -> float | None:
    """Least-squares slope of ``points`` (x seconds, y), in y per ``per`` seconds."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return None
    return round(per * sum((x - mx) * (y - my) for x, y in points) / var, 3)
