"""Producer and subscriber library, and the shared wire format of the SSE gateway.

from publisher import Publisher, Subscriber
Publisher("redis://localhost:6379/0").publish("orders", {"sku": "C3"})   # -> "1732...-0"
for item in Subscriber("http://localhost:8000", "orders"): ...          # Message | Gap
"""

from publisher.client import AsyncPublisher, Publisher
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
from publisher.subscriber import AsyncSubscriber, Gap, Message, Subscriber
from publisher.wire import HistoryLimits

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
