"""Messages between replicas: revocations and presence changes, over the broker's one pub/sub
connection per process.

They travel on the pub/sub name ``<pubsub_prefix>gateway@control``. ``@`` is outside the channel
naming rule (:func:`publisher.wire.is_valid_channel`), so no client, producer or token pattern
can ever name it; only something holding Redis credentials can publish there, and that is trusted
anyway (it can write history too). The broker treats it as one more wanted subscription, so it is
restored after every reconnect; the hub hands its messages here (``Hub.on_other``).

A message is one JSON object ``{"kind": ..., ...}``; each kind has one handler. A malformed one
is logged and dropped, never fatal to the pub/sub reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from gateway.broker.redis import REDIS_ERRORS
from gateway.errors import BrokerUnavailable
from gateway.hub import Hub

__all__ = ["CONTROL_CHANNEL", "Control", "Handler"]

log = logging.getLogger("gateway.control")

CONTROL_CHANNEL = "gateway@control"

Handler = Callable[[dict[str, Any]], None]


class Control:
    def __init__(self, hub: Hub, client: Any, pubsub_prefix: str) -> None:
        self._hub = hub
        self._client = client
        self._name = pubsub_prefix + CONTROL_CHANNEL
        self._handlers: dict[str, Handler] = {}

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def start(self) -> None:
        """Listen. Redis being down is fine: the broker keeps the name wanted and subscribes to it
        on (re)connecting, like every channel."""
        self._hub.on_other = self._receive
        try:
            await self._hub.broker.subscribe(CONTROL_CHANNEL)
        except BrokerUnavailable as exc:
            log.warning("control channel not subscribed yet (will be on connect): %s", exc)

    async def send(self, kind: str, **fields: Any) -> int:
        """Tell every replica (this one included). Returns how many processes heard it.
        Raises BrokerUnavailable."""
        payload = orjson.dumps({"kind": kind, **fields})
        try:
            return int(await self._client.publish(self._name, payload))
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"control message not sent: {exc}") from exc

    def _receive(self, channel: str, payload: bytes) -> None:
        if channel != CONTROL_CHANNEL:
            return  # a late message for a channel just released
        try:
            message = orjson.loads(payload)
            handler = self._handlers[message["kind"]]
            handler(message)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropping malformed control message (%d bytes): %r", len(payload), exc)
