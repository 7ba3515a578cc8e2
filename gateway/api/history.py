"""``GET /history/{channel}``: pages of a channel's history (logic in :mod:`gateway.history`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway.api.deps import BrokerDep, SettingsDep
from gateway.api.openapi import ID_SCHEMA, errors
from gateway.api.routes import ChannelPath
from gateway.auth.http import GrantDep
from gateway.errors import ClientError
from gateway.history import HistoryPage, page_after, page_before
from gateway.publishing import require_channel
from publisher.wire import parse_stream_id

__all__ = ["router"]

router = APIRouter()

IdQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="an event id such as 1732190000000-0",
        json_schema_extra=ID_SCHEMA,
    ),
]


class HistoryEvent(BaseModel):
    id: str
    event: str = Field(description='the SSE event name; "" for the default "message"')
    data: Any = Field(description="the published JSON value")


class HistoryAnswer(BaseModel):
    channel: str
    events: list[HistoryEvent] = Field(description="oldest first")
    next: str | None = Field(description="after= of the following page; null: nothing newer yet")
    prev: str | None = Field(description="before= of the preceding page; null: nothing older")
    truncated: bool = Field(
        description="history no longer reaches after= (or, paging back, "
        "the start of the channel): events were lost in between"
    )


@router.get(
    "/history/{channel}",
    tags=["history"],
    response_model=HistoryAnswer,
    responses=errors(400, 401, 403, 503),
)
async def history(
    channel: ChannelPath,
    broker: BrokerDep,
    settings: SettingsDep,
    grant: GrantDep,
    after: IdQuery = None,
    before: IdQuery = None,
    limit: Annotated[
        int, Query(ge=1, description="events per page, capped at GATEWAY_HISTORY_PAGE_MAX")
    ] = 100,
) -> Response:
    """A page of the channel's history, oldest first: after= an id (and up to before=, when
    given), before= alone (paging back), or neither (the newest events). Needs the right to
    subscribe to the channel."""
    grant.require("subscribe", (require_channel(channel),))
    limit = min(limit, settings.history_page_max)  # a page is capped; `next` goes on from it
    if after is not None:
        page = await page_after(broker, channel, _require_id(after), limit, _optional_id(before))
    else:
        page = await page_before(broker, channel, _optional_id(before), limit)
    return Response(_encode(channel, page), media_type="application/json")


def _require_id(value: str) -> str:
    if parse_stream_id(value) is None:
        raise ClientError(
            400, "invalid_id", f"{value[:64]!r} is not an event id such as 1732190000000-0"
        )
    return value


def _optional_id(value: str | None) -> str | None:
    return None if value is None else _require_id(value)


def _encode(channel: str, page: HistoryPage) -> bytes:
    events = [
        {"id": entry.id, "event": entry.event, "data": _json(entry.data)} for entry in page.entries
    ]
    answer = {
        "channel": channel,
        "events": events,
        "next": page.next,
        "prev": page.prev,
        "truncated": page.truncated,
    }
    return orjson.dumps(answer)


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # a raw producer wrote something else: hand it back as text
        return data.decode("utf-8", "replace")
