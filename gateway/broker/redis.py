"""The Redis broker: one pub/sub connection per process, kept alive and reconnected with jitter.

Divergences from the obvious, on purpose:

* The pub/sub connection is a bare redis-py ``Connection`` read by one reader task, not
  ``redis.asyncio.client.PubSub``: PubSub reconnects and resubscribes silently, and we must *know*
  about every reconnect (readiness, metrics, and above all recovery of what was missed meanwhile
  from history). It also costs several awaits of per-message bookkeeping we do not need.
* Subscriptions are reconciled, not commanded: ``subscribe``/``unsubscribe`` only change the set of
  wanted channels, and one syncer task turns the difference into SUBSCRIBE/UNSUBSCRIBE commands.
  A quick unsubscribe-then-subscribe of the same channel can therefore never be sent out of order.
* Reads are never cancelled mid-response (that corrupts the connection); a dead connection is
  detected by PINGs that go unanswered and then dropped as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
import redis.exceptions

from gateway.broker.base import BrokerHandler, HistoryEntry
from gateway.broker.pipe import ScriptPipe, pack_args
from gateway.broker.replies import read_replies
from gateway.errors import BrokerUnavailable
from gateway.metrics import PUBLISH_TIMER, REDIS_RECONNECTS
from publisher.client import AsyncPublisher
from publisher.errors import PublishError
from publisher.wire import (
    INDEXED_PUBLISH_SCRIPT,
    ZERO_ID,
    HistoryLimits,
    index_keys,
    publish_args,
    stream_key,
)

__all__ = ["Backoff", "RedisBroker"]

log = logging.getLogger("gateway.broker")

REDIS_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
SUBSCRIBE_CHUNK = 500
HEADS_CACHED = 10_000  # channels whose packed script head is kept


class Backoff:
    """Exponential backoff with full jitter, so many replicas do not reconnect in lockstep."""

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class RedisBroker:
    def __init__(
        self,
        *,
        client: Any,
        pubsub_connect: Callable[[], Awaitable[Any]],
        key_prefix: str,
        pubsub_prefix: str,
        history: HistoryLimits,
        ping_interval: float = 5.0,
        subscribe_timeout: float = 5.0,
        extra_clients: list[Any] | None = None,
        publish_pipe: ScriptPipe | None = None,
    ) -> None:
        self._client = client
        self._extra_clients = extra_clients or []
        self._pubsub_connect = pubsub_connect
        self._key_prefix = key_prefix
        self._pubsub_prefix = pubsub_prefix
        self._publisher = AsyncPublisher(
            client=client, key_prefix=key_prefix, pubsub_prefix=pubsub_prefix, history=history
        )
        # Publishes over a pipelined connection of their own (real standalone or Sentinel
        # Redis); through redis-py otherwise (a cluster routes by key; fakeredis has no socket).
        self._pipe = publish_pipe
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._indexed_script = client.register_script(INDEXED_PUBLISH_SCRIPT)
        self._history = history
        self._ping_interval = ping_interval
        self._subscribe_timeout = subscribe_timeout
        self._handler: BrokerHandler | None = None
        self._wanted: set[str] = set()
        self._sent: set[str] = set()
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._dirty = asyncio.Event()
        self._connected = asyncio.Event()
        self._last_seen = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.reconnects = 0
        self._recovery: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    def set_handler(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def start(self, wait: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-broker")
        try:
            await asyncio.wait_for(self._connected.wait(), wait)
        except TimeoutError:
            log.warning("redis not reachable yet; starting not-ready and retrying in background")

    async def close(self) -> None:
        self._stopping = True
        if self._pipe is not None:
            await self._pipe.close()
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
        for client in (self._client, *self._extra_clients):
            await client.aclose()

    async def _run(self) -> None:
        backoff = Backoff()
        first = True
        while not self._stopping:
            conn = None
            try:
                conn = await self._pubsub_connect()
                self._on_connected(first)
                first = False
                backoff.reset()
                await self._serve(conn)
            except REDIS_ERRORS as exc:
                log.warning("redis pub/sub connection lost: %s", exc or type(exc).__name__)
            except Exception:  # a bug must not end pub/sub for good: log it and reconnect
                log.exception("redis pub/sub connection failed unexpectedly")
            finally:
                self._on_disconnected()
                if conn is not None:
                    await _disconnect_quietly(conn)
            await asyncio.sleep(backoff.next_delay())

    def _on_connected(self, first: bool) -> None:
        self._sent.clear()
        self._confirmed.clear()
        self._last_seen = asyncio.get_running_loop().time()
        self._connected.set()
        self._dirty.set()
        if first:
            log.info("redis pub/sub connected")
            return
        self.reconnects += 1
        REDIS_RECONNECTS.inc()
        log.info("redis pub/sub reconnected (reconnect #%d)", self.reconnects)
        if self._handler is not None:
            self._recovery = asyncio.create_task(self._handler.on_reconnected(), name="recover")

    def _on_disconnected(self) -> None:
        self._connected.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(BrokerUnavailable("redis pub/sub connection lost"))
        self._waiters.clear()

    async def _serve(self, conn: Any) -> None:
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

    # -- the pub/sub connection --------------------------------------------------------------

    async def _read_loop(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        prefix_len = len(self._pubsub_prefix)
        async for replies in read_replies(conn):
            self._last_seen = loop.time()
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):  # a refused SUBSCRIBE would hang silently
                    raise redis.exceptions.ResponseError(f"pub/sub command refused: {reply}")
                if not isinstance(reply, list) or len(reply) < 2:
                    continue  # a PONG outside subscribed mode
                kind = reply[0]
                if kind == b"message":
                    channel = reply[1].decode()[prefix_len:]
                    if self._handler is not None:
                        self._handler.on_message(channel, reply[2])
                elif kind == b"subscribe":
                    self._on_subscribed(reply[1].decode()[prefix_len:])
                elif kind == b"unsubscribe":
                    channel = reply[1].decode()[prefix_len:]
                    if channel not in self._sent:
                        self._confirmed.discard(channel)

    def _on_subscribed(self, channel: str) -> None:
        if channel not in self._sent:
            return
        self._confirmed.add(channel)
        for waiter in self._waiters.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _sync_loop(self, conn: Any) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            add = [c for c in self._wanted if c not in self._sent]
            drop = [c for c in self._sent if c not in self._wanted]
            self._sent.update(add)
            self._sent.difference_update(drop)
            self._confirmed.difference_update(drop)
            await self._send_chunked(conn, "SUBSCRIBE", add)
            await self._send_chunked(conn, "UNSUBSCRIBE", drop)

    async def _send_chunked(self, conn: Any, command: str, channels: list[str]) -> None:
        for start in range(0, len(channels), SUBSCRIBE_CHUNK):
            names = [self._pubsub_prefix + c for c in channels[start : start + SUBSCRIBE_CHUNK]]
            await conn.send_command(command, *names)

    async def _ping_loop(self, conn: Any) -> None:
        while True:  # every answer (or message) refreshes _last_seen, which _serve watches
            await asyncio.sleep(self._ping_interval)
            await conn.send_command("PING")

    # -- the Broker interface ----------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        if channel in self._confirmed:
            return
        if not self.ready:
            raise BrokerUnavailable("redis is not reachable")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        self._dirty.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._subscribe_timeout)
        except TimeoutError as exc:
            raise BrokerUnavailable("redis did not confirm the subscription in time") from exc
        finally:
            if not waiter.done():  # nobody waits for it any more: its outcome would go unread
                waiter.cancel()
                self._waiters.get(channel, []).remove(waiter)

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._dirty.set()

    async def history(self, channel: str, after: str, count: int) -> list[HistoryEntry]:
        key = stream_key(channel, self._key_prefix)
        try:
            raw = await self._client.xrange(key, min="(" + after, max="+", count=count)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return [_entry(entry_id, fields) for entry_id, fields in raw]

    async def last_id(self, channel: str) -> str:
        key = stream_key(channel, self._key_prefix)
        try:
            raw = await self._client.xrevrange(key, max="+", min="-", count=1)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return raw[0][0].decode() if raw else ZERO_ID

    async def publish(self, channel: str, batch: list[tuple[str, bytes]]) -> list[str]:
        started = PUBLISH_TIMER.start()
        try:
            if self._pipe is not None:
                ids = [
                    raw.decode() for raw in await self._pipe.call(*self._command(channel, batch))
                ]
            else:
                ids = await self._publisher.publish_encoded(channel, batch)
        except PublishError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        PUBLISH_TIMER.done(started, len(ids))
        return ids

    async def publish_indexed(self, channel: str, batch: list[tuple[str, bytes]]) -> list[str]:
        # Through redis-py, not the pipe: Mercure publishes are rarer than ours, and one script per
        # pipe keeps the pipe's NOSCRIPT handling simple.
        started = PUBLISH_TIMER.start()
        keys = [stream_key(channel, self._key_prefix), *index_keys(channel, self._key_prefix)]
        args = publish_args(channel, batch, self._history, self._pubsub_prefix)
        try:
            raw = await self._indexed_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"publish failed: {exc}") from exc
        PUBLISH_TIMER.done(started, len(raw))
        return [item.decode() for item in raw]

    async def find_indexed(self, channel: str, own_id: str) -> str | None:
        index, _ = index_keys(channel, self._key_prefix)
        try:
            raw = await self._client.hget(index, own_id)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"index read failed: {exc}") from exc
        return raw.decode() if raw is not None else None

    # -- records with owners that must stay alive (Mercure's active subscriptions) --------

    def _group_keys(self, group: str, owner: str = "") -> tuple[str, str]:
        # One hash tag per group: a group's keys share a Redis Cluster slot.
        return (
            f"{self._key_prefix}owners:{{{group}}}",
            f"{self._key_prefix}records:{{{group}}}:{owner}",
        )

    async def put_records(
        self,
        group: str,
        owner: str,
        put: dict[str, bytes],
        drop: list[str],
        ttl_ms: int,
        *,
        replace: bool = False,
    ) -> None:
        owners, records = self._group_keys(group, owner)
        now_ms = int(time.time() * 1000)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if replace:
                    pipe.delete(records)
                if put:
                    pipe.hset(records, mapping=put)
                if drop:
                    pipe.hdel(records, *drop)
                pipe.zadd(owners, {owner: now_ms + ttl_ms})
                # Twice the owner's own deadline: whoever claims a dead owner can still read it.
                pipe.pexpire(records, 2 * ttl_ms)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records write failed: {exc}") from exc

    async def live_records(self, group: str) -> list[bytes]:
        owners, _ = self._group_keys(group)
        try:
            alive = await self._client.zrangebyscore(owners, int(time.time() * 1000), "+inf")
            found: list[bytes] = []
            for owner in alive:
                found.extend(
                    (
                        await self._client.hgetall(self._group_keys(group, owner.decode())[1])
                    ).values()
                )
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records read failed: {exc}") from exc
        return found

    async def claim_dead(self, group: str) -> list[list[bytes]]:
        owners, _ = self._group_keys(group)
        claimed: list[list[bytes]] = []
        try:
            dead = await self._client.zrangebyscore(owners, "-inf", int(time.time() * 1000))
            for owner in dead:
                if await self._client.zrem(owners, owner) != 1:
                    continue  # another replica claimed it first
                records = self._group_keys(group, owner.decode())[1]
                claimed.append(list((await self._client.hgetall(records)).values()))
                await self._client.delete(records)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"records claim failed: {exc}") from exc
        return claimed

    def _command(self, channel: str, batch: list[tuple[str, bytes]]) -> tuple[int, bytes]:
        """The publish script's key and arguments, packed: a channel's key and settings once
        (cached), then the batch's ``(event, data)`` pairs, which publish_args puts last."""
        head = self._heads.get(channel)
        if head is None:
            key = stream_key(channel, self._key_prefix)
            fixed = publish_args(channel, [], self._history, self._pubsub_prefix)
            head = (2 + len(fixed), pack_args(1, key, *fixed))
            if len(self._heads) < HEADS_CACHED:
                self._heads[channel] = head
        nargs, packed = head
        return nargs + 2 * len(batch), packed + pack_args(*(x for pair in batch for x in pair))

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except REDIS_ERRORS:
            return False


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> HistoryEntry:
    return HistoryEntry(
        id=entry_id.decode(),
        prev=fields.get(b"p", b"").decode(),
        event=fields.get(b"e", b"").decode(),
        data=fields.get(b"d", b"null"),
    )


async def _disconnect_quietly(conn: Any) -> None:
    try:
        await conn.disconnect()
    except Exception:
        log.debug("error while dropping the pub/sub connection", exc_info=True)
