"""The HTTP API: publish, subscribe, health. See README "API" for the full contract."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse

from gateway.api import endpoints
from gateway.api.deps import BrokerDep, HubDep, SettingsDep
from gateway.auth.http import GrantDep
from gateway.errors import ClientError
from gateway.limits import stream_slot
from gateway.metrics import CONTENT_TYPE_LATEST, render
from gateway.stream import StreamResponse

__all__ = ["router"]

router = APIRouter()

ChannelPath = Annotated[str, Path(max_length=endpoints.MAX_PARAM, description="the channel name")]
PresenceQuery = Annotated[
    bool, Query(description="1: also receive gateway.join / gateway.leave events (README)")
]


@router.post("/publish/{channel}", status_code=202, tags=["publish"])
async def publish(
    channel: ChannelPath,
    request: Request,
    broker: BrokerDep,
    settings: SettingsDep,
    grant: GrantDep,
    event: Annotated[str | None, Query(max_length=endpoints.MAX_PARAM)] = None,
) -> dict[str, object]:
    """Publish one JSON message (application/json) or a batch (application/x-ndjson)."""
    return await endpoints.publish(request, channel, event, broker, settings, grant)


@router.get(
    "/subscribe/{channel}",
    response_class=EventSourceResponse,
    tags=["subscribe"],
    dependencies=[Depends(stream_slot)],  # at most max_connections streams per process
)
async def subscribe_one(
    channel: ChannelPath,
    hub: HubDep,
    settings: SettingsDep,
    grant: GrantDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId")] = None,
    accept: Annotated[str | None, Header()] = None,
    presence: PresenceQuery = False,
) -> StreamResponse:
    """One channel as text/event-stream (or NDJSON lines for ``Accept: application/x-ndjson``);
    resumes from Last-Event-ID (header wins over query)."""
    channels = endpoints.single_channel(channel)
    last_id = last_event_id or last_event_id_query
    return await endpoints.open_subscription(
        hub, settings, grant, channels, last_id, accept, presence
    )


@router.get(
    "/subscribe",
    response_class=EventSourceResponse,
    tags=["subscribe"],
    dependencies=[Depends(stream_slot)],
)
async def subscribe_many(
    hub: HubDep,
    settings: SettingsDep,
    grant: GrantDep,
    channel: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId")] = None,
    accept: Annotated[str | None, Header()] = None,
    presence: PresenceQuery = False,
) -> StreamResponse:
    """Several channels on one stream: ``?channel=a&channel=b``."""
    channels = endpoints.many_channels(channel, settings)
    last_id = last_event_id or last_event_id_query
    return await endpoints.open_subscription(
        hub, settings, grant, channels, last_id, accept, presence
    )


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics of every worker of this process group (docs/observability.md)."""
    if not settings.metrics_enabled:
        raise ClientError(404, "not_found", "metrics are disabled (GATEWAY_METRICS_ENABLED)")
    return Response(render(request.state.sampler.sample), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process is alive (liveness: never depends on Redis)."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
async def readyz(hub: HubDep, broker: BrokerDep) -> JSONResponse:
    """Redis is reachable and the process is not draining (readiness)."""
    if hub.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        reachable = broker.ready and await asyncio.wait_for(broker.ping(), 1.0)
    except TimeoutError:
        reachable = False
    if not reachable:
        return JSONResponse({"status": "redis unreachable"}, status_code=503)
    return JSONResponse({"status": "ready"})
