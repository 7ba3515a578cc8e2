"""Errors raised by the publisher library (publishing and subscribing alike).

PublishError                 every error this library raises (named before the subscriber came)
├── InvalidChannel           the channel name breaks the naming rule
├── InvalidMessage           the message is not JSON-serialisable, or the event name is invalid
├── Rejected                 the gateway answered 4xx (carries status and its JSON body); a
│                            subscriber does not retry these (bad channel, 401/403)
├── BackendUnavailable       Redis or the gateway could not be reached, or answered 5xx;
│                            transport exceptions are wrapped here (``__cause__`` keeps them);
│                            a subscriber raises it only after ``max_retries`` failed attempts
└── SubscribeError           raised by Subscriber / AsyncSubscriber only
    ├── GapError             strict mode: history no longer covers what was missed (``.gap``);
    │                        iterating again continues after the gap
    └── StreamProtocolError  the answer is not a gateway stream (wrong type, unreadable line)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendUnavailable",
    "GapError",
    "InvalidChannel",
    "InvalidMessage",
    "PublishError",
    "Rejected",
    "StreamProtocolError",
    "SubscribeError",
]


class PublishError(Exception):
    """Base of every error the publisher library raises."""


class InvalidChannel(PublishError, ValueError):
    pass


class InvalidMessage(PublishError, ValueError):
    pass


class Rejected(PublishError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"gateway rejected the request: HTTP {status}: {body}")
        self.status = status
        self.body = body


class BackendUnavailable(PublishError):
    pass


class SubscribeError(PublishError):
    """Base of the errors only the subscriber raises."""


class GapError(SubscribeError):
    """Strict mode: the gateway signalled a gap. ``gap`` is the :class:`publisher.Gap`."""

    def __init__(self, gap: Any) -> None:
        super().__init__(
            f"gap on channel {gap.channel!r} ({gap.reason}): events up to {gap.resumed_at} "
            "were missed and are gone; the stream continues after it"
        )
        self.gap = gap


class StreamProtocolError(SubscribeError):
    pass
