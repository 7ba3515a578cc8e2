"""Lean paths for the two hot requests: a subscribe that opens a stream, and a publish.

FastAPI resolves a dozen parameters and dependencies per request, opens three ``AsyncExitStack``s
and runs eight middleware layers; a stream keeps some twenty of their coroutine frames alive for
its whole life. For subscribe that was most of the CPU of connecting and ~12 KiB of every idle
stream; for a single-message publish, more than half of its CPU (docs/performance.md).

These paths answer only what they can answer exactly as the routes in :mod:`gateway.api.routes`
do. Each first decides, without reading the body, whether the request is ordinary: a channel it
can parse, rights that allow it, a same-origin request (or CORS off). Anything else - HEAD, a
cross-origin request while CORS is on, any error found before the body is read - goes to the full
stack untouched, which gives the documented answer. Past that point a publish answers its own
errors, through the app's own exception handlers. So the routes stay the one definition of the
API and of its OpenAPI schema; tests/unit/test_api_fast.py holds the two paths to the same answers.
What they read, they read with the classes FastAPI uses (``QueryParams``, ``Headers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.limits import StreamResponse
from gateway.logs import REQUEST_ID
from gateway.publishing import publish_request, require_channel
from gateway.settings import Settings
from gateway.sse import open_stream
from gateway.uvicorn_io import corked

__all__ = ["FastPaths"]

PREFIX = "/subscribe"
PUBLISH_PREFIX = "/publish/"
MAX_PARAM = 512  # the routes' max_length on the channel path and the event query
ANSWERED = Response()  # what publish returns once it has sent its answer itself


class FastPaths:
    """Called by the app before its middleware stack. The caller has set the request id."""

    def __init__(self, *, cors: bool, handlers: Mapping[Any, Any]) -> None:
        self._cors = cors  # CORS responses carry headers only the middleware adds
        self._handlers = handlers  # the app's exception handlers, for the errors a publish finds

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request; False (nothing read or sent) when the full stack must."""
        if scope["type"] != "http" or scope.get("root_path"):
            return False
        if self._cors and any(name == b"origin" for name, _ in scope["headers"]):
            return False
        method, path = scope["method"], scope["path"]
        response: Response | None = None
        if method == "GET" and path.startswith(PREFIX):
            response = await self.open(scope)
        elif method == "POST" and path.startswith(PUBLISH_PREFIX):
            response = await self.publish(scope, receive, send)
            if response is ANSWERED:
                return True
        if response is None:
            return False
        response.raw_headers.append((b"x-request-id", str(REQUEST_ID.get()).encode()))
        await response(scope, receive, send)
        return True

    async def publish(self, scope: Scope, receive: Receive, send: Send) -> Response | None:
        """Publish and answer 202 (returns ANSWERED); an error's response; or None (nothing
        read) when the routes must answer."""
        state = scope["state"]
        request = Request(scope, receive)
        name = scope["path"][len(PUBLISH_PREFIX) :]
        event = QueryParams(scope["query_string"]).get("event") if scope["query_string"] else None
        if "/" in name or len(name) > MAX_PARAM or (event is not None and len(event) > MAX_PARAM):
            return None
        try:
            channel = require_channel(name)
            grant = state["auth"].authenticate(request)
            grant.require("publish", (channel,))
        except GatewayError:
            return None
        try:
            answer = await publish_request(request, channel, event, grant)
        except GatewayError as exc:
            return await self._error(request, exc)
        # The route's JSONResponse, byte for byte, without building one: two sends, same headers.
        content = orjson.dumps(answer)
        headers = [
            (b"content-length", b"%d" % len(content)),
            (b"content-type", b"application/json"),
            (b"x-request-id", str(REQUEST_ID.get()).encode()),
        ]
        with corked(send):  # one write for head and body
            await send({"type": "http.response.start", "status": 202, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        return ANSWERED

    async def _error(self, request: Request, exc: GatewayError) -> Response:
        for cls in type(exc).__mro__:  # as Starlette's ExceptionMiddleware picks a handler
            handler = self._handlers.get(cls)
            if handler is not None:
                response: Response = await handler(request, exc)
                return response
        raise exc

    async def open(self, scope: Scope) -> StreamResponse | None:
        """The stream the routes would open for this request, or None: let them answer."""
        state = scope["state"]
        settings: Settings = state["settings"]
        request = Request(scope)
        query = request.query_params
        try:
            channels = _channels(scope["path"], query, settings)
            if channels is None or state["hub"].draining:
                return None
            grant = state["auth"].authenticate(request)
            grant.require("subscribe", channels)
            await state["rate_limits"].check_connect(scope)  # refused: the routes answer 429
            release = state["slots"].acquire()
        except GatewayError:
            return None
        last_event_id = request.headers.get("last-event-id") or query.get("lastEventId")
        try:
            response = await open_stream(
                state["hub"],
                channels,
                last_event_id,
                settings,
                request.headers.get("accept"),
                expires_at=grant.expires_at,
            )
        except GatewayError:
            release()
            return None
        except BaseException:
            release()
            raise
        response.on_close.append(release)
        return response


def _channels(path: str, query: QueryParams, settings: Settings) -> tuple[str, ...] | None:
    """The channels as the routes read them; None for anything they would reject or redirect.
    Raises ClientError for an invalid name."""
    if path.startswith(PREFIX + "/"):
        name = path[len(PREFIX) + 1 :]
        return (require_channel(name),) if "/" not in name else None
    if path != PREFIX:
        return None
    channels = tuple(dict.fromkeys(query.getlist("channel")))
    if not channels or len(channels) > settings.max_channels_per_stream:
        return None
    for name in channels:
        require_channel(name)
    return channels
