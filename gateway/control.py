"""Messages between replicas: revocations and presence changes, over the broker's one pub/sub
connection per process.

They travel on the pub/sub channel ``gateway@control`` (announced and subscribed like any channel by
the broker: ``PUBLISH``/``SUBSCRIBE`` on ``<pubsub_prefix>gateway@control``, on a Redis Cluster
``SPUBLISH``/``SSUBSCRIBE`` on its shard channel, :func:`publisher.wire.announce_channel`). ``@`` is
outside the channel naming rule (:func:`publisher.wire.is_valid_channel`), so no client, producer or
token pattern can ever name it; only something holding Redis credentials can publish there, and that
is trusted anyway (it can write history too). The broker treats it as one more wanted subscription,
so it is restored after every reconnect; the hub hands its messages here (``Hub.on_other``).

A message is one JSON object ``{"kind": ..., ...}``; each kind has one handler. A malformed one
is logged and dropped, never fatal to the pub/sub reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from gateway.broker.redis import RedisBroker
from gateway.errors import BrokerUnavailable
from gateway.hub import Hub

__all__ = ["CONTROL_CHANNEL", "Control", "Handler"]

log = logging.getLogger("gateway.control")

CONTROL_CHANNEL = "gateway@control"

Handler = Callable[[dict[str, Any]], None]


class Control:
    def __init__(self, hub: Hub, broker: RedisBroker) -> None:
        self._hub = hub
        self._broker = broker
        self._handlers: dict[str, Handler] = {}

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def start(self) -> None:
        """Listen. Redis being down is fine: the broker keeps the name wanted and subscribes to it
        on (re)connecting, like every channel."""
        self._hub.on_other = self._receive
        try:
            await self._broker.subscribe(CONTROL_CHANNEL)
        except BrokerUnavailable as exc:
            log.warning("control channel not subscribed yet (will be on connect): %s", exc)

    async def send(self, kind: str, **fields: Any) -> int:
        """Tell every replica (this one included). Returns how many processes heard it.
        Raises BrokerUnavailable."""
        return await self._broker.announce(CONTROL_CHANNEL, orjson.dumps({"kind": kind, **fields}))

    def _receive(self, channel: str, payload: bytes) -> None:
        if channel != CONTROL_CHANNEL:
            return  # a late message for a channel just released
        try:
            message = orjson.loads(payload)
            handler = self._handlers[message["kind"]]
            handler(message)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropping malformed control message (%d bytes): %r", len(payload), exc)
