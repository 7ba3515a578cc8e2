"""The body of every hot endpoint as a plain function: the FastAPI routes
(:mod:`gateway.api.routes`) call them after FastAPI has resolved their parameters, and the
gateway's own HTTP/1.1 protocol (:mod:`gateway.server.hot`) calls the very same ones for the
common subscribe and publish requests. So parsing, auth, limits and errors have one definition;
the routes stay the one definition of the API's shape and its OpenAPI schema.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.auth.rights import Grant
from gateway.broker.base import Broker
from gateway.errors import BrokerUnavailable, ClientError
from gateway.hub import Hub
from gateway.publishing import (
    IDEMPOTENCY_HEADER,
    idempotency_from,
    parse_batch,
    read_body,
    require_channel,
)
from gateway.settings import Settings
from gateway.sse import open_stream
from gateway.stream import StreamResponse

__all__ = ["MAX_PARAM", "many_channels", "open_subscription", "publish", "single_channel"]

MAX_PARAM = 512  # max_length of the channel path and the event query (the routes declare it)


async def publish(
    request: Request,
    channel: str,
    event: str | None,
    broker: Broker,
    settings: Settings,
    grant: Grant,
) -> dict[str, object]:
    """Publish one JSON message (application/json) or a batch (application/x-ndjson), once per
    Idempotency-Key; the caller's rate limit is checked before the body is read."""
    grant.require("publish", (require_channel(channel),))  # before the body is read
    await request.state.rate_limits.check_publish(request.scope, grant)
    key = idempotency_from(request.headers.get(IDEMPOTENCY_HEADER), settings.idempotency_ttl)
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
    is_batch, batch = parse_batch(
        request.headers.get("content-type"), body, event, settings.max_batch_messages
    )
    ids = await broker.publish(channel, batch, key)
    return {"channel": channel, "ids": ids} if is_batch else {"channel": channel, "id": ids[0]}


def single_channel(name: str) -> tuple[str, ...]:
    return (require_channel(name),)


def many_channels(names: list[str], settings: Settings) -> tuple[str, ...]:
    channels = tuple(dict.fromkeys(names))  # de-duplicated, order kept
    if not channels:
        raise ClientError(400, "no_channel", "name at least one channel: ?channel=NAME")
    if len(channels) > settings.max_channels_per_stream:
        raise ClientError(
            400,
            "too_many_channels",
            f"{len(channels)} channels; at most {settings.max_channels_per_stream} per stream",
        )
    for name in channels:
        require_channel(name)
    return channels


async def open_subscription(
    hub: Hub,
    settings: Settings,
    grant: Grant,
    channels: tuple[str, ...],
    last_event_id: str | None,
    accept: str | None,
    presence: bool = False,
) -> StreamResponse:
    """``presence``: also push gateway.join / gateway.leave (gateway.presence); the token's
    subject goes with the stream for presence and revocation by subject."""
    # Rights are checked before joining, so a resume replays only channels this token may read.
    grant.require("subscribe", channels)
    if hub.draining:
        raise BrokerUnavailable("this gateway is shutting down; reconnect to another replica", 1)
    return await open_stream(
        hub,
        channels,
        last_event_id,
        settings,
        accept,
        expires_at=grant.expires_at,
        subject=grant.subject,
        presence=presence,
    )
