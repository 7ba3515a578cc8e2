"""``sse-bridge``: PostgreSQL ``LISTEN/NOTIFY`` payloads (JSON) -> gateway messages.

    sse-bridge --dsn postgresql://app@db/app --redis-url redis://redis:6379/0 \\
               --map orders_changed=orders --map stock=inventory

    core.py   the loop: connect, LISTEN, validate, publish, reconnect (what is and is not lost)
    cli.py    arguments and environment variables, logging, signals

Needs the ``bridge`` extra (``pip install "sse-gateway[bridge]"``: psycopg 3).
"""

from publisher.bridge.core import Bridge, BridgeConfig, BridgeStats

__all__ = ["Bridge", "BridgeConfig", "BridgeStats"]
