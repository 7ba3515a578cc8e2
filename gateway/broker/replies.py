"""Reading a Redis connection's replies in bulk: everything that has arrived, per socket read.

Why: redis-py's ``read_response`` is one awaited call (with its timeout and parser bookkeeping) per
reply. The pub/sub connection of a busy gateway and the publish pipe each receive many replies
per socket read; parsing them all at once with hiredis costs about a microsecond each.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import hiredis

__all__ = ["read_replies", "reads_bytes"]

READ_SIZE = 65536


def reads_bytes(conn: Any) -> bool:
    """True for a redis-py connection over a real socket (fakeredis hands out parsed replies)."""
    return isinstance(getattr(conn, "_reader", None), asyncio.StreamReader)


async def read_replies(conn: Any) -> AsyncIterator[list[Any]]:
    """Yield lists of replies as they arrive on a connected redis-py asyncio ``Connection``.

    Error replies come as ``hiredis.ReplyError`` values, not raised (in bulk mode). Ends with
    ConnectionError when Redis closes the connection. Never cancel a read half-way and go on
    using the connection: drop it.
    """
    if not reads_bytes(conn):
        while True:
            yield [await conn.read_response(timeout=math.inf, push_request=True)]
    reader: asyncio.StreamReader = conn._reader
    parser = hiredis.Reader()
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            raise ConnectionError("redis closed the connection")
        parser.feed(data)
        replies = []
        while (reply := parser.gets()) is not False:
            replies.append(reply)
        if replies:
            yield replies
