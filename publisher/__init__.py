"""Producer library and the shared wire format of the SSE gateway.

from publisher import Publisher
Publisher("redis://localhost:6379/0").publish("orders", {"sku": "C3"})   # -> "1732...-0"
"""

from publisher.client import AsyncPublisher, Publisher
from publisher.errors import (
    BackendUnavailable,
    InvalidChannel,
    InvalidMessage,
    PublishError,
    Rejected,
)
from publisher.wire import HistoryLimits

__all__ = [
    "AsyncPublisher",
    "BackendUnavailable",
    "HistoryLimits",
    "InvalidChannel",
    "InvalidMessage",
    "PublishError",
    "Publisher",
    "Rejected",
]
