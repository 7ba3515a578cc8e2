"""The Mercure hub's HTTP endpoints: subscribe (GET) and publish (POST) at /.well-known/mercure.

Routes only: parsing is gateway.mercure.parse, rights gateway.mercure.auth, the stream
gateway.sse.open_stream with Mercure's format and per-subscription filter (gateway.mercure.stream).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from gateway.api.deps import BrokerDep, HubDep, SettingsDep
from gateway.auth.errors import Forbidden, Unauthenticated
from gateway.errors import BrokerUnavailable, ClientError
from gateway.limits import stream_slot
from gateway.mercure.auth import MercureAuth
from gateway.mercure.parse import HUB_PATH, parse_selectors, parse_update
from gateway.mercure.resume import last_update_id, resolve_last_event_id
from gateway.mercure.stream import LOG, MERCURE, MercureView
from gateway.mercure.subscriptions import PREFIX, ActiveSubscriptions
from gateway.mercure.update import encode_update
from gateway.publishing import read_body
from gateway.sse import open_stream
from gateway.stream import StreamResponse

__all__ = ["EARLIEST", "hub_url", "mercure_router"]

EARLIEST = "earliest"


def hub_url(request: Request) -> str:
    """The hub's URL as this request reached it: the base of relative topics and patterns."""
    return str(request.base_url).rstrip("/") + HUB_PATH


def link_header(url: str) -> str:
    return f'<{url}>; rel="mercure"'


def mercure_router(auth: MercureAuth, active: ActiveSubscriptions | None) -> APIRouter:
    # Not in our OpenAPI schema: the Mercure protocol's contract is Mercure's own specification
    # (and its conformance suite, docs/mercure-conformance.md), whose form bodies, endless
    # streams and JSON-LD answers an OpenAPI description would only approximate.
    router = APIRouter(tags=["mercure"], include_in_schema=False)

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
            renderer=MERCURE,
            accepts=view.admits,
        )
        response.headers["Link"] = link_header(base)
        if active is not None:
            payloads = [(k, sel, grant.payload_for(k, sel)) for k, sel, _ in selectors]
            try:
                registration = await active.start(hub.broker, payloads, active.new_subscriber())
            except BaseException:
                hub.leave(response.subscription)  # the response never runs: nothing else would
                raise
            response.on_close.append(lambda: active.end(registration))
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

    if active is not None:
        _subscriptions_api(router, auth, active)
    return router


def _subscriptions_api(router: APIRouter, auth: MercureAuth, active: ActiveSubscriptions) -> None:
    @router.get(PREFIX)
    @router.get(PREFIX + "/{rest:path}")
    async def subscriptions(request: Request, broker: BrokerDep) -> JSONResponse:
        """All replicas' active subscriptions (JSON-LD), a selector's, or one."""
        base = hub_url(request)
        # As sent, still percent-encoded: subscription ids keep their topics encoded.
        path = request.scope["raw_path"].decode("latin-1").split("?")[0].rstrip("/")
        grant = auth.for_subscriber(request, base)
        if not grant.authenticated:
            raise Unauthenticated("authentication_required", "a token is required")
        if not grant.may_read((path,)):
            raise Forbidden(f"this token may not read {path}")
        documents = await active.documents(broker)
        last = await last_update_id(broker, LOG)
        headers = {"Link": f'{link_header(base)}; last-event-id="{last}"'}
        return JSONResponse(
            _answer(path, documents, last), media_type="application/ld+json", headers=headers
        )


def _answer(path: str, documents: list[dict[str, Any]], last: str) -> dict[str, Any]:
    single = [doc for doc in documents if doc["id"] == path]
    if single:
        return single[0]
    found = [doc for doc in documents if path == PREFIX or doc["id"].startswith(path + "/")]
    if not found and path.count("/") > PREFIX.count("/") + 1:
        raise ClientError(404, "not_found", "no such active subscription")
    collection = [{k: v for k, v in doc.items() if k != "@context"} for doc in found]
    return {
        "@context": "https://mercure.rocks/",
        "id": path,
        "type": "Subscriptions",
        "lastEventID": last,
        "subscriptions": collection,
    }
