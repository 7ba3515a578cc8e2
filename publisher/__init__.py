"""Producer and subscriber library, and the shared wire format of the SSE gateway.

from publisher import Publisher, Subscriber
Publisher("redis://localhost:6379/0").publish("orders", {"sku": "C3"})   # -> "1732...-0"
for item in Subscriber("http://localhost:8000", "orders"): ...          # Message | Gap
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from publisher.client import AsyncPublisher, Publisher
from publisher.decode import Gap, Message
from publisher.errors import (
    BackendUnavailable,
    GapError,
    InvalidChannel,
    InvalidMessage,
    PublishError,
    Rejected,
    StreamProtocolError,
    SubscribeError,
)
from publisher.wire import HistoryLimits

if TYPE_CHECKING:
    from publisher.subscriber import AsyncSubscriber, Subscriber

__all__ = [
    "AsyncPublisher",
    "AsyncSubscriber",
    "BackendUnavailable",
    "Gap",
    "GapError",
    "HistoryLimits",
    "InvalidChannel",
    "InvalidMessage",
    "Message",
    "PublishError",
    "Publisher",
    "Rejected",
    "StreamProtocolError",
    "SubscribeError",
    "Subscriber",
]


def __getattr__(name: str) -> Any:
    """The subscribers load on first use: they bring httpx (~0.1 s of import), which a process
    that only publishes (every gateway process imports this package) need not pay for."""
    if name in ("AsyncSubscriber", "Subscriber"):
        return getattr(import_module("publisher.subscriber"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
