"""The broker seam: what the hub needs from a message store, and what it hands back."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from publisher.idempotency import Idempotency

__all__ = ["Broker", "BrokerHandler", "HistoryEntry"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One entry of a channel's history stream (see :mod:`publisher.wire`)."""

    id: str
    prev: str
    event: str
    data: bytes


class BrokerHandler(Protocol):
    def on_message(self, channel: str, payload: bytes) -> None:
        """A pub/sub payload for a gateway channel. Called on the event loop; must not block."""

    async def on_reconnected(self, channels: Collection[str] | None = None) -> None:
        """The pub/sub connection of ``channels`` (None: all) was re-established or moved to
        another node; messages may have been missed meanwhile."""


class Broker(Protocol):
    @property
    def ready(self) -> bool:
        """True while the pub/sub connection is up."""

    def set_handler(self, handler: BrokerHandler) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Return once Redis has confirmed the subscription. Raises BrokerUnavailable."""

    def unsubscribe(self, channel: str) -> None:
        """Drop the subscription (asynchronously, in order with later subscribes)."""

    async def history(self, channel: str, after: str, count: int) -> list[HistoryEntry]:
        """Up to ``count`` entries with ids greater than ``after``, oldest first."""

    async def history_before(
        self, channel: str, before: str | None, count: int
    ) -> list[HistoryEntry]:
        """The ``count`` newest entries with ids less than ``before`` (``None``: the newest of
        all), oldest first."""

    async def last_id(self, channel: str) -> str:
        """The newest id in the channel's history, ``0-0`` when it has none."""

    async def publish(
        self,
        channel: str,
        batch: list[tuple[str, bytes]],
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        """Append ``(event, compact JSON)`` pairs atomically; return their ids in order. With
        ``idempotency``, a key seen within its window answers the first publish's ids instead."""

    async def publish_indexed(self, channel: str, batch: list[tuple[str, bytes]]) -> list[str]:
        """As :meth:`publish`, each message's own id (the ``"i"`` member of its JSON object)
        indexed to its stream id in the same atomic step (publisher.wire.INDEXED_PUBLISH_SCRIPT)."""

    async def find_indexed(self, channel: str, own_id: str) -> str | None:
        """The stream id of the first message published with ``own_id``; None if not indexed."""

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
        """Write and delete ``owner``'s records in ``group`` (``replace``: ``put`` becomes the
        whole set) and keep the owner alive for ``ttl_ms`` more, atomically."""

    async def live_records(self, group: str) -> list[bytes]:
        """The records of every owner of ``group`` still alive."""

    async def claim_dead(self, group: str) -> list[list[bytes]]:
        """The records of owners whose time ran out, each owner's claimed (and deleted) by
        exactly one caller: whoever cleans up after a dead process does it once."""

    async def ping(self) -> bool: ...
