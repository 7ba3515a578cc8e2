"""What the OpenAPI document says a route answers: the one place error answers are described.

``errors(400, 401, ...)`` is a ``responses=`` dict for a route: each status with our error body
``{"error": code, "detail": ...}`` (and ``Retry-After`` where we send it). :func:`install_openapi`
drops FastAPI's generated ``422`` answers (and the empty JSON body it lists beside a route's
own media types, e.g. /metrics' text/plain): validation errors are answered ``400`` with our body
(:mod:`gateway.api.errors`), so a 422 in the schema would be a promise we never keep.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from publisher.wire import (
    CHANNEL_PATTERN,
    EVENT_NAME_PATTERN,
    RESERVED_CHANNEL_PREFIX,
    RESERVED_EVENT_PREFIX,
)

__all__ = [
    "CHANNEL_SCHEMA",
    "EVENT_SCHEMA",
    "ID_SCHEMA",
    "ErrorBody",
    "errors",
    "install_openapi",
    "stream_responses",
]

# The naming rules of publisher.wire as JSON Schema, for parameters' documentation. The code
# checks them with the rule itself (a bad name gets our 400, not a validation error).
CHANNEL_SCHEMA: dict[str, Any] = {
    "pattern": f"^{CHANNEL_PATTERN}$",
    "not": {"pattern": "^" + re.escape(RESERVED_CHANNEL_PREFIX)},
}
EVENT_SCHEMA: dict[str, Any] = {  # empty: no event name (the default "message")
    "pattern": f"^({EVENT_NAME_PATTERN})?$",
    "not": {"pattern": "^" + re.escape(RESERVED_EVENT_PREFIX)},
}
# Redis stream ids; 19 digits each stay below 2**64, which every id Redis hands out does.
ID_SCHEMA: dict[str, Any] = {"pattern": r"^\d{1,19}-\d{1,19}$"}


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_channel, rate_limited")
    detail: str = Field(description="what was wrong, for a human")


_MEANING = {
    400: "invalid request (channel, event name, id, query or header)",
    401: "a token is required, or the token is invalid (WWW-Authenticate: Bearer)",
    403: "the token does not grant this channel",
    404: "not found, or switched off",
    408: "the request body was not received in time",
    413: "request body or batch too large",
    415: "unsupported Content-Type",
    429: "rate limit reached; retry after Retry-After seconds",
    503: "Redis unreachable, too many streams, or draining; retry after Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer each of ``statuses`` with our error body."""
    described: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _MEANING[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        described[status] = entry
    return described


def stream_responses() -> dict[int | str, dict[str, Any]]:
    """A subscribe's 200: an event stream, or NDJSON lines when asked for."""
    text = {"schema": {"type": "string"}}
    return {
        200: {
            "description": "the events, as Server-Sent Events or one JSON object per line",
            "content": {"text/event-stream": text, "application/x-ndjson": text},
        }
    }


def _correct(responses: dict[str, Any]) -> None:
    responses.pop("422", None)
    for response in responses.values():
        content = response.get("content", {})
        # FastAPI adds an empty JSON entry beside the media types a route declares itself.
        if len(content) > 1 and content.get("application/json") == {"schema": {}}:
            del content["application/json"]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    _correct(operation.get("responses", {}))
            components = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
