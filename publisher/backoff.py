"""Jittered exponential backoff: the one retry-delay rule of the project.

Used by the gateway's broker (pub/sub reconnects), the PostgreSQL bridge (database reconnects
and publish retries) and :class:`~publisher.Subscriber` (stream reconnects). stdlib only, so the
gateway imports it from here like the wire format.

Retry *n* (1 = the first after a failure) waits ``min(cap, base * 2**(n-1))`` times a random
factor in [0.5, 1] ("equal jitter"). Full jitter ([0, 1]) would spread clients slightly more,
but can hand out near-zero delays several times in a row, a hot loop against a server that is
down; the lower half-bound keeps every wait at least half its step while still breaking up the
lockstep of many replicas or clients reconnecting after the same outage.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``failures`` (1 or more)."""
    step = min(cap, base * 2.0 ** max(0, failures - 1))
    return step * random.uniform(0.5, 1.0)


class Backoff:
    """Counts consecutive failures; :meth:`reset` once an attempt succeeds."""

    __slots__ = ("base", "cap", "failures")

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def next_delay(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, self.base, self.cap)

    def reset(self) -> None:
        self.failures = 0
