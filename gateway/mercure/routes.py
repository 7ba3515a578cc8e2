"""The Mercure hub's HTTP endpoints: subscribe (GET) and publish (POST) at /.well-known/mercure.

Routes only: parsing is gateway.mercure.parse, rights gateway.mercure.auth, the stream
gateway.sse.open_stream with Mercure's per-subscription format (gateway.mercure.stream).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from gateway.api.deps import BrokerDep, HubDep, SettingsDep
from gateway.errors import BrokerUnavailable
from gateway.limits import StreamResponse, stream_slot
from gateway.mercure.auth import MercureAuth
from gateway.mercure.parse import HUB_PATH, parse_selectors, parse_update
from gateway.mercure.resume import resolve_last_event_id
from gateway.mercure.stream import LOG, MercureFormat, MercureView
from gateway.mercure.update import encode_update
from gateway.publishing import read_body
from gateway.sse import open_stream

__all__ = ["EARLIEST", "hub_url", "mercure_router"]

EARLIEST = "earliest"


def hub_url(request: Request) -> str:
    """The hub's URL as this request reached it: the base of relative topics and patterns."""
    return str(request.base_url).rstrip("/") + HUB_PATH


def link_header(url: str) -> str:
    return f'<{url}>; rel="mercure"'


def mercure_router(auth: MercureAuth) -> APIRouter:
    router = APIRouter(tags=["mercure"])

    @router.get(HUB_PATH, dependencies=[Depends(stream_slot)])
    async def subscribe(request: Request, hub: HubDep, settings: SettingsDep) -> StreamResponse:
        """Mercure subscribe: ``topic=`` (0.x), ``match=`` / ``match_urlpattern=`` (draft-08)."""
        base = hub_url(request)
        query = request.query_params.multi_items()
        selectors = parse_selectors(query, base, settings.mercure_max_topics)
        grant = auth.for_subscriber(request, base)
        if hub.draining:
            raise BrokerUnavailable("this gateway is shutting down; reconnect to another replica")
        requested = (
            request.headers.get("last-event-id")
            or request.query_params.get("lastEventID")
            or request.query_params.get("last_event_id")
        )
        position, anchor = await resolve_last_event_id(hub.broker, LOG, requested)
        view = MercureView(tuple(matcher for _, _, matcher in selectors), grant)
        response = await open_stream(
            hub,
            (LOG,),
            position,
            settings,
            expires_at=grant.expires_at,
            renderer=MercureFormat(view),
        )
        response.headers["Link"] = link_header(base)
        if requested:
            response.headers["Last-Event-ID"] = anchor  # 0.x
            response.headers["Mercure-Last-Event-ID"] = anchor  # draft-08
        return response

    @router.post(HUB_PATH, response_class=PlainTextResponse)
    async def publish(
        request: Request, broker: BrokerDep, settings: SettingsDep
    ) -> PlainTextResponse:
        """Mercure publish: a form with ``topic`` (repeated), ``data``, ``private``, ``id``,
        ``type``, ``retry``. Answers the update's id as text/plain."""
        base = hub_url(request)
        grant = auth.for_publisher(request, base)
        body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
        content_type = request.headers.get("content-type")
        update = parse_update(body, content_type, base, settings.mercure_max_topics)
        grant.require_publish(update.topics)
        await broker.publish_indexed(LOG, [("", encode_update(update))])
        return PlainTextResponse(update.id, headers={"Link": link_header(base)})

    return router
