"""Sets the gauges of :mod:`gateway.metrics` from the live hub, broker and stream slots.

Sampled, not counted along every code path: a sampled gauge cannot drift. Once a second per
worker (the app's lifespan runs :meth:`Sampler.run`) and right before a scrape (``/metrics``
calls :meth:`Sampler.sample`), which also moves the hot path's plain-int tallies into their
counters.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.metrics import CONNECTIONS, HUB_CHANNELS, REDIS_CONNECTED, SUBSCRIPTIONS, TALLY, TASKS

if TYPE_CHECKING:
    from gateway.broker.base import Broker
    from gateway.hub import Hub
    from gateway.limits import StreamSlots

__all__ = ["Sampler"]


class Sampler:
    """Sets the gauges from the live objects and flushes the tallies; once a second per worker."""

    def __init__(self, hub: Hub, broker: Broker, slots: StreamSlots) -> None:
        self._hub, self._broker, self._slots = hub, broker, slots

    def sample(self) -> None:
        TALLY.flush()
        CONNECTIONS.set(self._slots.in_use)
        SUBSCRIPTIONS.set(sum(len(s.channels) for s in self._hub.subscriptions))
        HUB_CHANNELS.set(self._hub.channel_count())
        TASKS.set(len(asyncio.all_tasks()))
        REDIS_CONNECTED.set(1 if self._broker.ready else 0)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)
