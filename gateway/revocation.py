"""Closing streams on every replica: all of a channel's, or all of a token subject's.

The operator's request reaches every replica as one control message (:mod:`gateway.control`);
each closes its own matching streams with the reason ``revoked``, which ends the stream with the
farewell event ``gateway.revoked`` and a jittered ``retry:`` of one to five seconds
(:mod:`gateway.events`), so a whole channel's clients do not come back in the same instant.

What this is not: token revocation. A client that reconnects with a token that is still valid is
let in again; tokens belong to their issuer, who stops issuing them (short ``exp``). Revocation
ends what is open now - e.g. right after the issuer withdrew a user's access.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.control import Control
from gateway.events import REVOKED
from gateway.hub import Hub
from gateway.subscription import Subscription

__all__ = ["Revocation"]

log = logging.getLogger("gateway.revocation")


class Revocation:
    def __init__(self, hub: Hub, control: Control) -> None:
        self._hub = hub
        self._control = control
        control.on("revoke_channel", self._on_channel)
        control.on("revoke_subject", self._on_subject)

    async def revoke_channel(self, channel: str) -> int:
        """Close the channel's streams everywhere; the number of replicas told. Raises
        BrokerUnavailable."""
        return await self._control.send("revoke_channel", channel=channel)

    async def revoke_subject(self, subject: str) -> int:
        return await self._control.send("revoke_subject", subject=subject)

    def _on_channel(self, message: dict[str, Any]) -> None:
        channel = str(message["channel"])
        _close(self._hub.subscribers_of(channel), f"channel {channel!r}")

    def _on_subject(self, message: dict[str, Any]) -> None:
        subject = str(message["subject"])
        # A scan of this process' streams: revocations are rare, an index would cost every stream.
        matching = [s for s in self._hub.subscriptions if s.subject == subject]
        _close(matching, "a subject")  # the subject itself is personal data: not logged


def _close(subscriptions: list[Subscription], what: str) -> None:
    for subscription in subscriptions:
        subscription.close(REVOKED)
    if subscriptions:
        log.info("revoked %d streams of %s", len(subscriptions), what)
