"""What an operator can learn about one channel: its history stream and who is on it.

History comes from the channel's stream key (:func:`publisher.wire.stream_key`) in one pipelined
round trip; the subscriber count and subjects from :mod:`gateway.presence_store`, over every
replica.
"""

from __future__ import annotations

from typing import Any

from gateway.broker.link import REDIS_ERRORS
from gateway.errors import BrokerUnavailable
from gateway.presence_store import PresenceStore
from publisher.wire import ZERO_ID, stream_key

__all__ = ["ChannelInfo"]


class ChannelInfo:
    def __init__(self, client: Any, key_prefix: str, store: PresenceStore) -> None:
        self._client = client
        self._prefix = key_prefix
        self._store = store

    async def describe(self, channel: str) -> dict[str, Any]:
        """``{"channel", "subscribers", "last_id", "history": {...}}``. Raises BrokerUnavailable."""
        history = await self._history(channel)
        return {
            "channel": channel,
            "subscribers": await self._store.count(channel),
            "last_id": history["last_id"] or ZERO_ID,
            "history": history,
        }

    async def presence(self, channel: str) -> dict[str, Any]:
        _, clients = await self._store.subjects(channel)
        return {
            "channel": channel,
            "clients": [
                {"subject": subject, "connections": clients[subject]} for subject in sorted(clients)
            ],
        }

    async def _history(self, channel: str) -> dict[str, Any]:
        key = stream_key(channel, self._prefix)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xlen(key)
                pipe.xrange(key, count=1)
                pipe.xrevrange(key, count=1)
                length, first, last = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        return {
            "length": int(length),
            "first_id": first[0][0].decode() if first else None,
            "last_id": last[0][0].decode() if last else None,
        }
