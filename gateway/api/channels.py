"""The operator endpoints: channel info, presence, revocation. README "Operator endpoints".

Each needs the ``admin`` right on its channel (``sse.admin`` in the token); disconnecting a
subject reaches every channel, so it needs ``admin`` on ``*``. With auth off they are open, as
everything else is (the start-up warning says so).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel

from gateway.api.deps import InfoDep, RevocationDep
from gateway.api.openapi import errors
from gateway.api.routes import ChannelPath
from gateway.auth.http import GrantDep
from gateway.errors import ClientError
from gateway.publishing import read_body, require_channel
from gateway.settings import Settings

__all__ = ["router"]

router = APIRouter(tags=["operator"])

MAX_DISCONNECT_BODY = 4096
MAX_SUBJECT_LENGTH = 1024


class HistoryInfo(BaseModel):
    length: int
    first_id: str | None
    last_id: str | None


class ChannelInfoBody(BaseModel):
    channel: str
    subscribers: int
    last_id: str
    history: HistoryInfo


class Client(BaseModel):
    subject: str
    connections: int


class PresenceBody(BaseModel):
    channel: str
    clients: list[Client]


class Revoked(BaseModel):
    channel: str | None = None
    subject: str | None = None
    replicas: int  # processes that heard the revocation


COMMON = (400, 401, 403, 503)


@router.get("/channels/{channel}", response_model=ChannelInfoBody, responses=errors(*COMMON))
async def channel_info(channel: ChannelPath, info: InfoDep, grant: GrantDep) -> dict[str, Any]:
    """Subscribers over every replica, and the history the channel holds."""
    grant.require("admin", (require_channel(channel),))
    return await info.describe(channel)


@router.get("/channels/{channel}/presence", response_model=PresenceBody, responses=errors(*COMMON))
async def presence(channel: ChannelPath, info: InfoDep, grant: GrantDep) -> dict[str, Any]:
    """Token subjects with open streams on the channel, over every replica."""
    grant.require("admin", (require_channel(channel),))
    return await info.presence(channel)


@router.delete(
    "/channels/{channel}/subscribers",
    status_code=202,
    response_model=Revoked,
    response_model_exclude_none=True,
    responses=errors(*COMMON),
)
async def revoke_channel(
    channel: ChannelPath, revocation: RevocationDep, grant: GrantDep
) -> dict[str, Any]:
    """Close every stream on the channel, on every replica (farewell event gateway.revoked)."""
    grant.require("admin", (require_channel(channel),))
    return {"channel": channel, "replicas": await revocation.revoke_channel(channel)}


_SUBJECT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["subject"],
                "properties": {
                    "subject": {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_LENGTH}
                },
            }
        }
    },
}


@router.post(
    "/disconnect",
    status_code=202,
    response_model=Revoked,
    response_model_exclude_none=True,
    responses=errors(400, 401, 403, 408, 413, 415, 503),
    openapi_extra={"requestBody": _SUBJECT_BODY},
)
async def disconnect(
    request: Request, revocation: RevocationDep, grant: GrantDep
) -> dict[str, Any]:
    """Close every stream of a token subject (``{"subject": ...}``) on every replica."""
    grant.require_everywhere("admin")
    settings: Settings = request.state.settings
    if (request.headers.get("content-type") or "").split(";")[0].strip() != "application/json":
        raise ClientError(415, "unsupported_media_type", "send Content-Type: application/json")
    subject = _subject(await read_body(request, MAX_DISCONNECT_BODY, settings.body_timeout))
    return {"subject": subject, "replicas": await revocation.revoke_subject(subject)}


def _subject(body: bytes) -> str:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, "invalid_json", f"invalid JSON: {exc}") from None
    subject = value.get("subject") if isinstance(value, dict) else None
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        raise ClientError(
            400,
            "invalid_subject",
            f'send {{"subject": "<token sub>"}}: a string of 1-{MAX_SUBJECT_LENGTH} characters',
        )
    return subject
