"""Structured logs: one JSON object per line, carrying the id of the request that caused it.

Every line has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``msg``; lines logged while a
request is handled also have ``request_id``, and a call's ``extra={...}`` fields are added as keys.
The request id is the client's ``X-Request-ID`` when it is a sane token (so a proxy's id follows
the request through), otherwise a fresh one; either way it is echoed in the response header.

What is never logged: message bodies, tokens, query strings (``?access_token=`` lives there),
Redis passwords. Code logs channel names, ids, counts and reasons - nothing a client sent as data.

``GATEWAY_LOG_FORMAT=text`` gives the classic one-line human format instead.
"""

from __future__ import annotations

import logging
import random
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestIdMiddleware", "logging_config", "request_id_for"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_HEADER = b"x-request-id"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root and uvicorn's loggers; uvicorn applies it in
    every worker process (which is why it is a plain, picklable dict)."""
    formatter: dict[str, Any] = (
        {"()": "gateway.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # Propagate to root: one handler, one format for everything.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


class RequestIdMiddleware:
    """Pure ASGI (``BaseHTTPMiddleware`` would buffer streaming responses): sets the request id
    for everything the request logs, including its SSE stream, and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        token = REQUEST_ID.set(request_id)
        header = (_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


def request_id_for(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER and _VALID_ID.fullmatch(value):
            return str(value.decode())
    # Only for correlating log lines, not a secret: the random module's generator is several
    # times cheaper than ``secrets`` (which asks the kernel each time), once per request.
    return f"{random.getrandbits(64):016x}"
