"""Active subscriptions: subscription events, and one registry for all replicas together.

* Events: when a Mercure subscription starts or ends, on whichever replica, a private update
  on ``/.well-known/mercure/subscriptions/{topic}/{subscriber}`` (0.x ``topic=`` selectors) or
  ``.../subscriptions/{match_type}/{match}/{subscriber}`` (draft-08 matchers) goes through the
  Mercure log like any other, so it reaches every replica's subscribers and resumes exactly.
* Registry: each process (``owner``, a random id) keeps its subscriptions' documents as records
  in Redis and refreshes them every ``ttl / 3`` (broker ``put_records``). The API reads the
  records of every live owner. A process that dies without a word (SIGKILL, a lost node) stops
  refreshing: its records leave the API within ``ttl``, and the first replica to notice claims
  them - exactly one does (broker ``claim_dead``) - and publishes their "ended" events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import orjson

from gateway.broker.base import Broker
from gateway.errors import BrokerUnavailable
from gateway.mercure.parse import HUB_PATH
from gateway.mercure.stream import LOG
from gateway.mercure.update import Update, encode_update

__all__ = ["ActiveSubscriptions", "Registration", "subscription_document", "subscription_event"]

log = logging.getLogger("gateway.mercure")

GROUP = "mercure-subscriptions"
CONTEXT = "https://mercure.rocks/"
PREFIX = HUB_PATH + "/subscriptions"


def subscription_document(
    kind: str, selector: str, subscriber: str, payload: Any
) -> dict[str, Any]:
    if kind == "template":  # 0.x
        topic_id = f"{PREFIX}/{quote(selector, safe='')}/{quote(subscriber, safe='')}"
        doc: dict[str, Any] = {"@context": CONTEXT, "id": topic_id, "type": "Subscription"}
        doc["topic"] = selector
    else:  # draft-08
        topic_id = f"{PREFIX}/{kind}/{quote(selector, safe='')}/{quote(subscriber, safe='')}"
        doc = {"id": topic_id, "type": "subscription", "match_type": kind, "match": selector}
    doc |= {"subscriber": subscriber, "active": True}
    if payload is not None:
        doc["payload"] = payload
    return doc


class Registration:
    """One connection's subscriptions (one document per selector)."""

    __slots__ = ("documents", "subscriber")

    def __init__(self, documents: list[dict[str, Any]], subscriber: str) -> None:
        self.documents = documents
        self.subscriber = subscriber


class ActiveSubscriptions:
    def __init__(self, ttl: float) -> None:
        self.owner = uuid.uuid4().hex
        self.ttl_ms = int(ttl * 1000)
        self._documents: dict[str, bytes] = {}
        self._broker: Broker | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    @staticmethod
    def new_subscriber() -> str:
        return f"urn:uuid:{uuid.uuid4()}"

    async def start(
        self, broker: Broker, selectors: list[tuple[str, str, Any]], subscriber: str
    ) -> Registration:
        """Record and announce a connection's subscriptions. ``selectors``: (kind, selector,
        payload). Raises BrokerUnavailable."""
        self._bind(broker)
        documents = [subscription_document(k, s, subscriber, p) for k, s, p in selectors]
        put = {doc["id"]: orjson.dumps(doc) for doc in documents}
        self._documents.update(put)
        registration = Registration(documents, subscriber)
        try:
            await broker.put_records(GROUP, self.owner, put, [], self.ttl_ms)
            await _announce(broker, documents)
        except BaseException:
            self.end(registration)  # whatever got through is undone (or expires with us)
            raise
        return registration

    def end(self, registration: Registration) -> None:
        """Called when the stream closes (synchronously): the rest happens in a task."""
        ids = [doc["id"] for doc in registration.documents]
        for id_ in ids:
            self._documents.pop(id_, None)
        ended = [doc | {"active": False} for doc in registration.documents]
        if self._broker is not None:
            self._spawn(self._ended(self._broker, ids, ended))

    async def _ended(self, broker: Broker, ids: list[str], ended: list[dict[str, Any]]) -> None:
        try:
            await broker.put_records(GROUP, self.owner, {}, ids, self.ttl_ms)
            await _announce(broker, ended)
        except BrokerUnavailable as exc:  # the records expire with this owner if it stays cut off
            log.warning("could not record the end of %d subscriptions: %s", len(ids), exc)

    async def documents(self, broker: Broker) -> list[dict[str, Any]]:
        """Every replica's live subscriptions, after ending the dead replicas' (once, anywhere)."""
        await self.reap(broker)
        return [orjson.loads(raw) for raw in await broker.live_records(GROUP)]

    async def reap(self, broker: Broker) -> None:
        for records in await broker.claim_dead(GROUP):
            ended = [orjson.loads(raw) | {"active": False} for raw in records]
            await _announce(broker, ended)

    def _bind(self, broker: Broker) -> None:
        self._broker = broker
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(broker), name="mercure-presence")

    async def _beat(self, broker: Broker) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                # The whole set each time: records a peer wrongly reaped (we were late) come
                # back, and any a failed write left behind go.
                mine = dict(self._documents)
                await broker.put_records(GROUP, self.owner, mine, [], self.ttl_ms, replace=True)
                await self.reap(broker)
            except BrokerUnavailable as exc:
                log.warning("mercure presence heartbeat failed: %s", exc)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _announce(broker: Broker, documents: list[dict[str, Any]]) -> None:
    if not documents:
        return
    batch = [("", encode_update(subscription_event(doc))) for doc in documents]
    await broker.publish_indexed(LOG, batch)


def subscription_event(doc: dict[str, Any]) -> Update:
    draft = doc.get("type") == "subscription"
    return Update(
        id=f"urn:uuid:{uuid.uuid4()}",
        topics=(doc["id"],),
        data=orjson.dumps(doc).decode(),
        private=True,
        type="mercure" if draft else None,
    )
