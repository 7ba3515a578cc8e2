"""One pub/sub connection to one Redis node, kept alive and reconnected with jitter.

Divergences from the obvious, on purpose:

* The connection is our own (gateway.broker.connection) read by one reader task, not
  ``redis.asyncio.client.PubSub`` (nor its cluster twin, ``ClusterPubSub``): those reconnect and
  resubscribe silently, and we must *know* about every reconnect (readiness, metrics, and above
  all recovery of what was missed meanwhile from history). They also cost several awaits of
  per-message bookkeeping we do not need.
* Subscriptions are reconciled, not commanded: ``want``/``unwant`` only change the set of wanted
  channels, and one syncer task turns the difference into (S)SUBSCRIBE/(S)UNSUBSCRIBE commands.
  A quick unsubscribe-then-subscribe of the same channel can therefore never be sent out of order.
* Reads are never cancelled mid-response (that corrupts the connection); a dead connection is
  detected by PINGs that go unanswered and then dropped as a whole.
* ``sharded`` (Redis Cluster): SSUBSCRIBE, one command per channel (a command's channels must
  share a slot), on the names of :func:`publisher.wire.shard_channel`. A ``sunsubscribe`` Redis
  pushes on its own (the slot moved away) and a ``MOVED`` refusal go to ``on_moved``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis
import redis.exceptions

from gateway.broker.connection import Connect, Link, pack_command
from gateway.errors import BrokerUnavailable
from publisher.backoff import Backoff

__all__ = ["REDIS_ERRORS", "LinkEvents", "PubSubLink"]

log = logging.getLogger("gateway.broker")

# asyncio raises RuntimeError for a write on a transport redis-py has just closed (a failover).
REDIS_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError, RuntimeError)
SUBSCRIBE_CHUNK = 500
PING = pack_command("PING")


def _ignore(*_: Any) -> None:
    return None


@dataclass
class LinkEvents:
    """What a link reports to its owner. Called on the event loop; must not block."""

    on_message: Callable[[str, bytes], None]
    on_connected: Callable[[bool], None] = _ignore  # argument: True on the first connect
    on_lost: Callable[[], None] = _ignore
    on_moved: Callable[[str | None], None] = _ignore  # the channel, None for a MOVED refusal


@dataclass(frozen=True)
class _Protocol:
    subscribe: str
    unsubscribe: str
    message: bytes
    subscribed: bytes
    unsubscribed: bytes


CLASSIC = _Protocol("SUBSCRIBE", "UNSUBSCRIBE", b"message", b"subscribe", b"unsubscribe")
SHARDED = _Protocol("SSUBSCRIBE", "SUNSUBSCRIBE", b"smessage", b"ssubscribe", b"sunsubscribe")


class PubSubLink:
    def __init__(
        self,
        *,
        connect: Connect,
        events: LinkEvents,
        prefix: str,
        sharded: bool = False,
        ping_interval: float = 5.0,
        subscribe_timeout: float = 5.0,
        name: str = "redis",
    ) -> None:
        self._connect = connect
        self.events = events
        self._prefix = prefix
        self._sharded = sharded
        self._protocol = SHARDED if sharded else CLASSIC
        self._ping_interval = ping_interval
        self._subscribe_timeout = subscribe_timeout
        self.name = name
        self.wanted: set[str] = set()
        self._sent: set[str] = set()
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._dirty = asyncio.Event()
        self._connected = asyncio.Event()
        self._last_seen = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ever_connected = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    def launch(self) -> None:
        """Start connecting in the background."""
        self._task = asyncio.create_task(self._run(), name=f"pubsub-{self.name}")

    async def start(self, wait: float = 0.0) -> None:
        self.launch()
        if wait:
            try:
                await asyncio.wait_for(self._connected.wait(), wait)
            except TimeoutError:
                log.warning("redis not reachable yet; starting not-ready and retrying")

    async def close(self) -> None:
        self._stopping = True
        task = self._task
        # Python 3.11's wait_for can swallow a cancellation that lands as its inner await
        # completes (gh-86296); a test's teardown once hung on that for ever. Cancel until done.
        for _ in range(10):
            if task is None or task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # retrieved: it ended on its own (and was logged)
        self._fail_waiters("the pub/sub connection was closed")

    async def _run(self) -> None:
        backoff = Backoff(base=0.1, cap=5.0)  # jittered: replicas do not reconnect in lockstep
        first = True
        while not self._stopping:
            conn = None
            try:
                conn = await self._connect()
                self._on_connected(first)
                first = False
                backoff.reset()
                await self._serve(conn)
            except REDIS_ERRORS as exc:
                log.warning("redis pub/sub connection %s lost: %s", self.name, exc or repr(exc))
            except Exception:  # a bug must not end pub/sub for good: log it and reconnect
                log.exception("redis pub/sub connection %s failed unexpectedly", self.name)
            finally:
                self._on_disconnected()
                if conn is not None:
                    await conn.close()
            await asyncio.sleep(backoff.next_delay())

    def _on_connected(self, first: bool) -> None:
        self._sent.clear()
        self._confirmed.clear()
        self._last_seen = asyncio.get_running_loop().time()
        self._ever_connected = True
        self._connected.set()
        self._dirty.set()
        self.events.on_connected(first)

    def _on_disconnected(self) -> None:
        self._connected.clear()
        self._fail_waiters("redis pub/sub connection lost")
        if not self._stopping:
            self.events.on_lost()

    def _fail_waiters(self, reason: str) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(BrokerUnavailable(reason))
        self._waiters.clear()

    async def _serve(self, conn: Link) -> None:
        """Run the connection's reader, syncer and pinger until one ends or Redis goes quiet.

        Liveness is judged here, not in the pinger: a task stuck in a write could not judge it.
        The tasks get a bounded time to end once cancelled, so no stuck one holds up the
        reconnect (a rare hang after CLIENT KILL storms was that: tests/faults)."""
        tasks = [
            asyncio.create_task(self._read_loop(conn), name="pubsub-read"),
            asyncio.create_task(self._sync_loop(conn), name="pubsub-sync"),
            asyncio.create_task(self._ping_loop(conn), name="pubsub-ping"),
        ]
        loop = asyncio.get_running_loop()
        try:
            while True:
                done, _ = await asyncio.wait(
                    tasks, timeout=self._ping_interval, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()
                if done:
                    raise redis.exceptions.ConnectionError("pub/sub connection task ended")
                if loop.time() - self._last_seen > 3 * self._ping_interval:
                    raise redis.exceptions.ConnectionError("pub/sub connection stopped answering")
        finally:
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=1.0)
            if stuck:
                log.warning("pub/sub tasks did not stop: %s", [t.get_name() for t in stuck])

    # -- the connection ----------------------------------------------------------------------

    def _channel(self, name: bytes) -> str:
        channel = name.decode()[len(self._prefix) :]
        return channel[1:-1] if self._sharded else channel  # shard channels are "{C}"

    async def _read_loop(self, conn: Link) -> None:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        async for replies in conn.replies():
            self._last_seen = loop.time()
            on_message = self.events.on_message
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    self._refused(str(reply))
                    continue
                if not isinstance(reply, list) or len(reply) < 2:
                    continue  # a PONG outside subscribed mode
                kind = reply[0]
                if kind == protocol.message:
                    on_message(self._channel(reply[1]), reply[2])
                elif kind == protocol.subscribed:
                    self._on_subscribed(self._channel(reply[1]))
                elif kind == protocol.unsubscribed:
                    self._on_unsubscribed(self._channel(reply[1]))

    def _refused(self, message: str) -> None:
        if self._sharded and message.startswith("MOVED"):
            # Our slot map is stale: resend what is unconfirmed once the owner re-routed it.
            self._sent.difference_update(self._sent - self._confirmed)
            self.events.on_moved(None)
            return
        # Anything else refused would leave a subscribe hanging silently.
        raise redis.exceptions.ResponseError(f"pub/sub command refused: {message}")

    def _on_subscribed(self, channel: str) -> None:
        if channel not in self._sent:
            return
        self._confirmed.add(channel)
        for waiter in self._waiters.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)

    def _on_unsubscribed(self, channel: str) -> None:
        if channel not in self._sent:  # the answer to our own unsubscribe
            self._confirmed.discard(channel)
            return
        if self._sharded:  # Redis dropped it on its own: the slot moved to another node
            log.info("redis %s gave up channel %s (its slot moved)", self.name, channel)
            self._sent.discard(channel)
            self._confirmed.discard(channel)
            self.events.on_moved(channel)

    async def _sync_loop(self, conn: Link) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            add = [c for c in self.wanted if c not in self._sent]
            drop = [c for c in self._sent if c not in self.wanted]
            self._sent.update(add)
            self._sent.difference_update(drop)
            self._confirmed.difference_update(drop)
            await self._send(conn, self._protocol.subscribe, add)
            await self._send(conn, self._protocol.unsubscribe, drop)

    async def _send(self, conn: Link, command: str, channels: list[str]) -> None:
        if self._sharded:
            names = [f"{self._prefix}{{{c}}}" for c in channels]
            if names:
                await conn.send(b"".join(pack_command(command, n) for n in names))
            return
        for start in range(0, len(channels), SUBSCRIBE_CHUNK):
            names = [self._prefix + c for c in channels[start : start + SUBSCRIBE_CHUNK]]
            await conn.send(pack_command(command, *names))

    async def _ping_loop(self, conn: Link) -> None:
        while True:  # every answer (or message) refreshes _last_seen, which _serve watches
            await asyncio.sleep(self._ping_interval)
            await conn.send(PING)

    # -- wanting channels --------------------------------------------------------------------

    def want(self, channel: str) -> None:
        self.wanted.add(channel)
        self._dirty.set()

    def unwant(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._dirty.set()
        for waiter in self._waiters.pop(channel, ()):
            if not waiter.done():  # it moved to another node's link
                waiter.set_exception(BrokerUnavailable(f"channel {channel} moved"))

    async def subscribe(self, channel: str) -> None:
        """Return once Redis has confirmed the subscription. Raises BrokerUnavailable."""
        self.want(channel)
        if channel in self._confirmed:
            return
        # A shard's new link is still connecting: its first confirmation is worth waiting for.
        if not self.ready and (self._ever_connected or not self._sharded):
            raise BrokerUnavailable("redis is not reachable")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._subscribe_timeout)
        except TimeoutError as exc:
            raise BrokerUnavailable("redis did not confirm the subscription in time") from exc
        finally:
            if not waiter.done():  # nobody waits for it any more: its outcome would go unread
                waiter.cancel()
                waiters = self._waiters.get(channel, [])
                if waiter in waiters:
                    waiters.remove(waiter)
