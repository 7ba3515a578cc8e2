"""The benchmark message: a ~256-byte JSON object with a sequence number and a send timestamp.

``seq`` comes first and ``ts`` second so the subscriber can slice them out of the bytes without a
JSON parse (:func:`tests.perf.sse_client.parse_message` falls back to ``json`` if a server
re-encodes). ``ts`` is ``time.monotonic_ns()``: ``CLOCK_MONOTONIC`` is system-wide on Linux, so
a receiver in another process subtracts it from its own reading.
"""

from __future__ import annotations

import time

SIZE = 256


def make(seq: int, channel: str, size: int = SIZE) -> bytes:
    head = b'{"seq":%d,"ts":%d,"ch":"%s","pad":"' % (seq, time.monotonic_ns(), channel.encode())
    pad = max(0, size - len(head) - 2)
    return head + b"x" * pad + b'"}'
