"""The HTTP API: publish, subscribe, health. See README "API" for the full contract."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from gateway.api import endpoints
from gateway.api.deps import BrokerDep, HubDep, SettingsDep
from gateway.api.openapi import CHANNEL_SCHEMA, EVENT_SCHEMA, errors, stream_responses
from gateway.auth.http import GrantDep
from gateway.errors import ClientError
from gateway.limits import stream_slot
from gateway.metrics import CONTENT_TYPE_LATEST, render
from gateway.stream import StreamResponse
from publisher.idempotency import IDEMPOTENCY_KEY_PATTERN

__all__ = ["router"]

router = APIRouter()

PresenceQuery = Annotated[
    bool, Query(description="1: also receive gateway.join / gateway.leave events (README)")
]


async def connect_rate(request: Request) -> None:
    """Route dependency: the per-address rate of opening streams (the hot path checks the same,
    gateway.server.hot)."""
    await request.state.rate_limits.check_connect(request.scope)


ChannelPath = Annotated[
    str,
    Path(
        max_length=endpoints.MAX_PARAM,
        description="the channel name",
        json_schema_extra=CHANNEL_SCHEMA,
    ),
]
EventQuery = Annotated[
    str | None,
    Query(
        max_length=endpoints.MAX_PARAM,
        description="the SSE event name",
        json_schema_extra=EVENT_SCHEMA,
    ),
]


class Published(BaseModel):
    channel: str
    id: str | None = Field(None, description="the message's id (application/json body)")
    ids: list[str] | None = Field(None, description="the ids in order (NDJSON body)")


class Status(BaseModel):
    status: str


_PUBLISH_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"description": "one message: any JSON value"}},
        "application/x-ndjson": {
            "schema": {"type": "string", "description": "a batch: one JSON value per line"}
        },
    },
}


@router.post(
    "/publish/{channel}",
    status_code=202,
    tags=["publish"],
    response_model=None,
    responses={
        202: {"model": Published, "description": "published"},
        **errors(400, 401, 403, 408, 413, 415, 429, 503),
    },
    openapi_extra={"requestBody": _PUBLISH_BODY},
)
async def publish(
    channel: ChannelPath,
    request: Request,
    broker: BrokerDep,
    settings: SettingsDep,
    grant: GrantDep,
    event: EventQuery = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="publish once per key and channel within GATEWAY_IDEMPOTENCY_TTL",
            json_schema_extra={"pattern": f"^{IDEMPOTENCY_KEY_PATTERN}$"},
        ),
    ] = None,  # read by endpoints.publish; declared here for the schema
) -> dict[str, object]:
    """Publish one JSON message (application/json) or a batch (application/x-ndjson)."""
    return await endpoints.publish(request, channel, event, broker, settings, grant)


@router.get(
    "/subscribe/{channel}",
    response_class=EventSourceResponse,
    tags=["subscribe"],
    responses={**stream_responses(), **errors(400, 401, 403, 429, 503)},
    # The rate limit first: a refused client must not hold a slot.
    dependencies=[Depends(connect_rate), Depends(stream_slot)],  # max_connections per process
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
    responses={**stream_responses(), **errors(400, 401, 403, 429, 503)},
    dependencies=[Depends(connect_rate), Depends(stream_slot)],
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


@router.get(
    "/metrics",
    tags=["ops"],
    response_model=None,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **errors(404),
    },
)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics of every worker of this process group (docs/observability.md)."""
    if not settings.metrics_enabled:
        raise ClientError(404, "not_found", "metrics are disabled (GATEWAY_METRICS_ENABLED)")
    return Response(render(request.state.sampler.sample), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", tags=["ops"], response_model=Status)
async def healthz() -> dict[str, str]:
    """The process is alive (liveness: never depends on Redis)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["ops"],
    response_model=Status,
    responses={503: {"model": Status, "description": "redis unreachable, or draining"}},
)
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
