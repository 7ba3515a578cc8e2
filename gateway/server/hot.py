"""The common subscribe and publish requests, served on the connection without the ASGI stack,
by the very functions the FastAPI routes call (:mod:`gateway.api.endpoints`).

A request is served here only while everything about it is ordinary; the first sign that it is
not (a name the route would reject, rights that do not allow it, a full gateway, a cross-origin
request while CORS is on, a prefix the routes do not have) hands it, untouched, to the app,
which gives the documented answer - so the routes stay the one definition of every answer and of
the OpenAPI schema. Nothing here has side effects before that point (a slot taken is given back).
Past the body read, a publish answers its own errors with the app's own error handlers
(:func:`gateway.api.errors.response_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect, Request

from gateway.api import endpoints
from gateway.api.errors import response_for
from gateway.errors import GatewayError
from gateway.logs import REQUEST_ID, request_id_for
from gateway.server.exchange import Exchange, run_asgi
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.server.protocol import HttpProtocol

__all__ = ["route"]

Serve = Callable[["HttpProtocol", Exchange], Coroutine[Any, Any, None]]

SUBSCRIBE = "/subscribe"
PUBLISH = "/publish/"
_JSON = (b"content-type", b"application/json")


def route(scope: MutableMapping[str, Any], state: dict[str, Any]) -> Serve | None:
    """The hot path for this request, or None: the app serves it."""
    settings: Settings | None = state.get("settings")
    if settings is None or scope["root_path"]:
        return None
    if settings.cors_origin_list and any(name == b"origin" for name, _ in scope["headers"]):
        return None  # CORS answers carry headers only the app's middleware adds
    method, path = scope["method"], scope["path"]
    if method == "GET" and (path == SUBSCRIBE or path.startswith(SUBSCRIBE + "/")):
        return subscribe
    if method == "POST" and path.startswith(PUBLISH):
        return publish
    return None


async def subscribe(conn: HttpProtocol, exchange: Exchange) -> None:
    scope = exchange.scope
    request_id = request_id_for(scope)
    REQUEST_ID.set(request_id)  # this task's context: the stream's log lines carry it
    state = scope["state"]
    request = Request(scope)
    try:
        if "presence" in request.query_params:
            raise GatewayError("the route parses the flag")  # rare: operator dashboards
        channels = _channels(scope["path"], request, state["settings"])
        grant = state["auth"].authenticate(request)
        await state["rate_limits"].check_connect(scope)  # refused: the route answers 429
        release = state["slots"].acquire()
    except GatewayError:
        return await run_asgi(conn.app, exchange, conn.done)
    last_event_id = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    try:
        response = await endpoints.open_subscription(
            state["hub"],
            state["settings"],
            grant,
            channels,
            last_event_id,
            request.headers.get("accept"),
        )
    except GatewayError:
        release()
        return await run_asgi(conn.app, exchange, conn.done)
    except BaseException:
        release()
        raise
    response.on_close.append(release)
    if exchange.disconnected:  # gone while it joined: nothing to serve
        response.subscription.close("client")
        response.closed("client")
        return
    conn.stream(exchange, response, [*response.raw_headers, (b"x-request-id", request_id.encode())])


def _channels(path: str, request: Request, settings: Settings) -> tuple[str, ...]:
    if path == SUBSCRIBE:
        return endpoints.many_channels(request.query_params.getlist("channel"), settings)
    name = path[len(SUBSCRIBE) + 1 :]
    if "/" in name or len(name) > endpoints.MAX_PARAM:
        raise GatewayError("not a route of ours")  # the app answers 404 / 400
    return endpoints.single_channel(name)


async def publish(conn: HttpProtocol, exchange: Exchange) -> None:
    scope = exchange.scope
    request_id = request_id_for(scope)
    REQUEST_ID.set(request_id)
    state = scope["state"]
    request = Request(scope, exchange.receive)
    name = scope["path"][len(PUBLISH) :]
    event = request.query_params.get("event") if scope["query_string"] else None
    too_long = len(name) > endpoints.MAX_PARAM or len(event or "") > endpoints.MAX_PARAM
    try:
        if "/" in name or too_long:
            raise GatewayError("not a route of ours")
        grant = state["auth"].authenticate(request)
        grant.require("publish", endpoints.single_channel(name))  # before the body is read
    except GatewayError:
        return await run_asgi(conn.app, exchange, conn.done)
    try:
        result = await endpoints.publish(
            request, name, event, state["broker"], state["settings"], grant
        )
    except GatewayError as exc:
        answer = await response_for(request, exc)
        headers = [*answer.raw_headers, (b"x-request-id", request_id.encode())]
        return conn.respond(exchange, answer.status_code, headers, bytes(answer.body))
    except ClientDisconnect:
        return conn.done(False)
    body = orjson.dumps(result)
    headers = [
        (b"content-length", b"%d" % len(body)),
        _JSON,
        (b"x-request-id", request_id.encode()),
    ]
    conn.respond(exchange, 202, headers, body)
