"""The bridge loop: LISTEN on PostgreSQL channels, publish each JSON payload to its gateway channel.

What it guarantees, and what it cannot:

* Every payload it publishes was read whole and parsed as JSON first; anything else (not JSON,
  larger than ``max_payload``) is logged and counted, never published.
* Payloads reach Redis through :class:`~publisher.AsyncPublisher`, so each one gets an id and a
  place in history like any other message: subscribers can resume across gateway restarts.
* While Redis is unreachable the bridge stops reading and retries the publish with backoff;
  PostgreSQL keeps queueing notifications for this session meanwhile (its queue is large), so
  nothing is lost as long as the database connection holds.
* **NOTIFYs sent while the bridge has no database connection are lost.** LISTEN/NOTIFY keeps no
  history: a notification goes to the sessions listening at commit time, and to nobody else
  (and one still queued for a session when its connection drops is gone with it).
  The bridge reconnects with backoff and says so in its log each time. Where that matters, write
  events to an outbox table in the same transaction and NOTIFY only as a wake-up (docs/bridge.md).
* A connection that silently died (no RST, e.g. a cut network) is found by TCP keepalives and by
  a ``SELECT 1`` whenever nothing arrived for ``health_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from publisher.backoff import Backoff
from publisher.client import AsyncPublisher
from publisher.errors import BackendUnavailable, PublishError
from publisher.wire import DEFAULT_HISTORY, DEFAULT_KEY_PREFIX, HistoryLimits

__all__ = ["Bridge", "BridgeConfig", "BridgeStats"]

log = logging.getLogger("sse_bridge")

MAX_NOTIFY_PAYLOAD = 8000  # PostgreSQL's own limit on a NOTIFY payload, in bytes


@dataclass(frozen=True)
class BridgeConfig:
    dsn: str
    url: str  # redis://... (written directly) or http(s)://gateway (POSTed)
    mapping: dict[str, str]  # PostgreSQL channel -> gateway channel
    token: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    history: HistoryLimits = DEFAULT_HISTORY
    max_payload: int = MAX_NOTIFY_PAYLOAD
    retry_initial: float = 0.5
    retry_max: float = 30.0
    health_interval: float = 10.0
    stats_interval: float = 60.0


@dataclass
class BridgeStats:
    received: int = 0
    published: int = 0
    invalid: int = 0  # not JSON (or JSON that cannot be published: NaN, ...)
    too_large: int = 0
    rejected: int = 0  # the gateway refused it (4xx), e.g. a token without publish rights
    connects: int = 0
    disconnects: int = 0

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


class Bridge:
    def __init__(self, config: BridgeConfig, publisher: AsyncPublisher | None = None) -> None:
        if not config.mapping:
            raise ValueError("map at least one PostgreSQL channel to a gateway channel")
        self.config = config
        self.stats = BridgeStats()
        self._publisher = publisher or AsyncPublisher(
            config.url, key_prefix=config.key_prefix, history=config.history, token=config.token
        )

    async def run(self) -> None:
        """Run until cancelled: (re)connect, LISTEN, forward. Cancelling is the way to stop."""
        backoff = Backoff(self.config.retry_initial, self.config.retry_max)
        reporter = asyncio.create_task(self._report())
        try:
            while True:
                try:
                    await self._session(backoff)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    delay = backoff.next_delay()
                    self.stats.disconnects += 1
                    log.warning(
                        "database unavailable (%s); retrying in %.1fs. NOTIFYs sent until the "
                        "bridge listens again are LOST: LISTEN/NOTIFY keeps no history",
                        " ".join(str(exc).split()) or type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            reporter.cancel()
            log.info("bridge stopped: %s", self.stats.summary())
            await self._publisher.aclose()

    async def _session(self, backoff: Backoff) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.config.dsn,
            autocommit=True,
            connect_timeout=10,
            # libpq TCP keepalives: find a dead peer within ~30 s even when no packet says so.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
        )
        async with conn:
            for channel in self.config.mapping:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.stats.connects += 1
            backoff.reset()
            log.info("listening on %s", ", ".join(sorted(self.config.mapping)))
            while True:
                async for notify in conn.notifies(timeout=self.config.health_interval):
                    await self.handle(notify.channel, notify.payload)
                await conn.execute("SELECT 1")  # quiet for a while: prove the link is alive

    async def handle(self, pg_channel: str, payload: str) -> None:
        """Validate one notification and publish it; count and log whatever is refused."""
        self.stats.received += 1
        target = self.config.mapping.get(pg_channel)
        if target is None:
            return  # not ours (LISTENed by someone else on this session): nothing to do
        size = len(payload.encode("utf-8"))
        if size > self.config.max_payload:
            self.stats.too_large += 1
            log.warning(
                "dropped NOTIFY on %s: %d bytes > max %d", pg_channel, size, self.config.max_payload
            )
            return
        try:
            message = json.loads(payload)
        except ValueError as exc:
            self._invalid(pg_channel, payload, f"not JSON ({exc})")
            return
        await self._publish(pg_channel, target, message, payload)

    async def _publish(self, pg_channel: str, target: str, message: Any, payload: str) -> None:
        backoff = Backoff(self.config.retry_initial, self.config.retry_max)
        while True:
            try:
                await self._publisher.publish(target, message)
                self.stats.published += 1
                return
            except BackendUnavailable as exc:
                delay = backoff.next_delay()
                log.warning("publish to %s failed (%s); retrying in %.1fs", target, exc, delay)
                await asyncio.sleep(delay)
            except (ValueError, PublishError) as exc:  # InvalidMessage is a ValueError too
                if isinstance(exc, ValueError):
                    self._invalid(pg_channel, payload, str(exc))
                else:
                    self.stats.rejected += 1
                    log.error(
                        "dropped NOTIFY on %s: %s (%s)", pg_channel, exc, self.stats.summary()
                    )
                return

    def _invalid(self, pg_channel: str, payload: str, why: str) -> None:
        self.stats.invalid += 1
        log.warning(
            "dropped NOTIFY on %s: %s: %r (%s)",
            pg_channel,
            why,
            payload[:200],
            self.stats.summary(),
        )

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            log.info("bridge stats: %s", self.stats.summary())
