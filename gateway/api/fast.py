"""The lean path for the common subscribe request: a well-formed GET that opens a stream.

FastAPI resolves a dozen parameters and dependencies per request, opens three ``AsyncExitStack``s
and keeps some twenty coroutine frames of its middleware stack alive for the whole life of the
response. For the endpoint that opens thousands of long-lived streams that was most of the CPU of
connecting and ~12 KiB of every idle stream (docs/performance.md).

This path answers only what it can answer exactly as the routes in :mod:`gateway.api.routes` do:
a GET it can parse, allowed, on a gateway with room, that opens its stream. Anything else - an
error to report, HEAD, a cross-origin request while CORS is on, a Redis failure while joining -
goes to the full stack untouched, which gives the documented answer. So the routes stay the one
definition of the API and of its OpenAPI schema; this only shortcuts their successful case. What
it reads, it reads with the same Starlette classes FastAPI uses (``QueryParams``, ``Headers``).
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Scope

from gateway.errors import GatewayError
from gateway.limits import StreamResponse
from gateway.publishing import require_channel
from gateway.settings import Settings
from gateway.sse import open_stream

__all__ = ["FastSubscribe"]

PREFIX = "/subscribe"


class FastSubscribe:
    def __init__(self, *, cors: bool) -> None:
        self._cors = cors  # CORS responses carry headers only the middleware adds

    def wants(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            and not scope.get("root_path")
            and not (self._cors and any(name == b"origin" for name, _ in scope["headers"]))
        )

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
