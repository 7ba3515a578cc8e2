"""Errors raised by the publisher library.

PublishError                 every error this library raises
├── InvalidChannel           the channel name breaks the naming rule
├── InvalidMessage           the message is not JSON-serialisable, or the event name is invalid
├── Rejected                 the gateway answered 4xx (carries status and its JSON body)
└── BackendUnavailable       Redis or the gateway could not be reached, or answered 5xx;
                             transport exceptions are wrapped here (``__cause__`` keeps them)
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackendUnavailable", "InvalidChannel", "InvalidMessage", "PublishError", "Rejected"]


class PublishError(Exception):
    """Base of every error the publisher library raises."""


class InvalidChannel(PublishError, ValueError):
    pass


class InvalidMessage(PublishError, ValueError):
    pass


class Rejected(PublishError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"gateway rejected the message: HTTP {status}: {body}")
        self.status = status
        self.body = body


class BackendUnavailable(PublishError):
    pass
