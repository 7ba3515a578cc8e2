"""A log-linear latency histogram (microseconds): O(1) to add, mergeable across processes.

Values below 1024 us are exact; above, each power of two is split into 512 buckets (~0.2 %
resolution). Keeping counts instead of samples lets a worker record millions of deliveries.
"""

from __future__ import annotations

_SUB = 1024


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, us: int) -> None:
        if us < 0:
            us = 0
        shift = us.bit_length() - 10
        key = us if shift <= 0 else (shift << 10) + (us >> shift)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.total += 1

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.total += other.total

    def percentile(self, p: float) -> float | None:
        """The value (us) at percentile ``p`` (0-100), or ``None`` when empty."""
        if not self.total:
            return None
        rank = max(1, round(self.total * p / 100))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return float(_value(key))
        return float(_value(max(self.counts)))


def _value(key: int) -> int:
    shift, low = divmod(key, _SUB)
    return low if shift == 0 else low << shift


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of a small list."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(len(ordered) * p / 100) - 1))]
