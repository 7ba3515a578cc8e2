"""Turning a ``POST /publish/{channel}`` request into a validated batch for the broker.

Every check a client can fail maps to a ClientError (4xx with a JSON body). The body is read with
a byte limit and a deadline, so neither a huge nor a trickling body can tie up memory or a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from gateway.errors import ClientError
from publisher.idempotency import MAX_IDEMPOTENCY_KEY_LENGTH, Idempotency, is_valid_idempotency_key
from publisher.wire import is_valid_channel, is_valid_event_name

__all__ = [
    "IDEMPOTENCY_HEADER",
    "idempotency_from",
    "parse_batch",
    "read_body",
    "require_channel",
]

IDEMPOTENCY_HEADER = "idempotency-key"


def idempotency_from(header: str | None, ttl: float) -> Idempotency | None:
    if header is None:
        return None
    if not is_valid_idempotency_key(header):
        raise ClientError(
            400,
            "invalid_idempotency_key",
            f"invalid Idempotency-Key {header[:200]!r}: use 1-{MAX_IDEMPOTENCY_KEY_LENGTH} "
            "letters, digits or '_-.:'",
        )
    return Idempotency(header, int(ttl * 1000))


JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


def require_channel(name: str) -> str:
    if not is_valid_channel(name):
        raise ClientError(
            400,
            "invalid_channel",
            f"invalid channel name {name[:200]!r}: use 1-128 letters, digits or '_-.:', "
            "starting with a letter, digit or '_' (names starting with '__' are Redis' own)",
        )
    return name


def _require_event(name: str | None) -> str:
    if name is None or name == "":
        return ""
    if not is_valid_event_name(name):
        raise ClientError(
            400,
            "invalid_event",
            f"invalid event name {name[:200]!r}: use 1-64 letters, digits or '_-.:' "
            "(names starting with 'gateway.' are reserved)",
        )
    return name


async def read_body(request: Request, max_bytes: int, deadline: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ClientError(413, "body_too_large", f"request body over {max_bytes} bytes")
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    with _BODY_READS.deadline(deadline) as overdue:
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise ClientError(413, "body_too_large", f"request body over {max_bytes} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not overdue():
                raise
            raise ClientError(
                408, "body_timeout", f"request body not received in {deadline:g}s"
            ) from None
    return b"".join(chunks)


class _BodyReads:
    """Bounds every request body read with one periodic check instead of a timer per request:
    ``asyncio.timeout`` was a fifth of a single-message publish's own CPU (a timer handle pushed
    on the loop's heap and taken off again). A reader still at it past its deadline is cancelled
    within a quarter of its deadline after it (a trickling body holds no worker for long)."""

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._overdue: set[asyncio.Task[Any]] = set()
        self._check: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the check's (tests run several)

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[Callable[[], bool]]:
        """Yields ``overdue()``: True once the check cancelled this task for its deadline."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._due[task] = loop.time() + seconds
        if self._check is None or self._loop is not loop:
            self._loop = loop
            self._check = loop.call_later(min(0.25, seconds / 4), self._run_check, loop)

        def overdue() -> bool:
            return task in self._overdue and task.uncancel() == 0

        try:
            yield overdue
        finally:
            del self._due[task]
            self._overdue.discard(task)

    def _run_check(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # superseded by a check on another loop
        self._check = None
        if not self._due:
            return
        now = loop.time()
        for task, due in self._due.items():
            if due <= now and task not in self._overdue and task.get_loop() is loop:
                self._overdue.add(task)
                task.cancel()
        self._check = loop.call_later(0.25, self._run_check, loop)


_BODY_READS = _BodyReads()


def parse_batch(
    content_type: str | None, body: bytes, event: str | None, max_messages: int
) -> tuple[bool, list[tuple[str, bytes]]]:
    """``(is_batch, [(event, compact JSON), ...])`` for a JSON or NDJSON body."""
    event_name = _require_event(event)
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in JSON_TYPES:
        return False, [(event_name, _compact(body, None))]
    if media_type in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if not lines:
            raise ClientError(400, "empty_body", "the NDJSON body has no messages")
        if len(lines) > max_messages:
            raise ClientError(
                413,
                "batch_too_large",
                f"{len(lines)} messages in one batch; the limit is {max_messages}",
            )
        return True, [(event_name, _compact(line, n)) for n, line in enumerate(lines, 1)]
    raise ClientError(
        415,
        "unsupported_media_type",
        "send Content-Type: application/json (one message) or application/x-ndjson (one per line)",
    )


def _compact(raw: bytes, line: int | None) -> bytes:
    where = f" on line {line}" if line is not None else ""
    if not raw.strip():
        raise ClientError(400, "empty_body", "the request body is empty: send one JSON value")
    try:
        return orjson.dumps(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, "invalid_json", f"invalid JSON{where}: {exc}") from exc
