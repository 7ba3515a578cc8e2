"""Talking to Redis: pub/sub (one connection per process, or per shard on a cluster),
reconnects, history reads, publishes.

The broker pushes every pub/sub payload into a :class:`~gateway.broker.base.BrokerHandler` (the
hub) and knows nothing of clients. The embedded mode runs the very same
:class:`~gateway.broker.redis.RedisBroker` on fakeredis.
"""

from gateway.broker.base import Broker, BrokerHandler, HistoryEntry
from gateway.broker.factory import create_broker

__all__ = ["Broker", "BrokerHandler", "HistoryEntry", "create_broker"]
