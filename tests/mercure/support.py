"""Helpers for Mercure tests: publish a form, open a subscription."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.mercure.conftest import PUBLISH_ALL
from tests.support.sse import SSEConnection, sse_connect

HUB = "/.well-known/mercure"


def client_for_loopback(**options: Any) -> httpx.AsyncClient:
    """Plain HTTP to 127.0.0.1: no TLS context (loading the CA bundle costs ~150 ms a client)."""
    return httpx.AsyncClient(verify=False, **({"timeout": 10.0} | options))


def unique(prefix: str = "https://example.test/t") -> str:
    """A topic no other test uses (the tests share one redis-server and so one Mercure log)."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


async def publish(base: str, token: str | None = PUBLISH_ALL, **fields: Any) -> httpx.Response:
    """POST a form; a list value repeats the field (topic=a&topic=b)."""
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with client_for_loopback() as client:
        return await client.post(base + HUB, content=urlencode(pairs), headers=headers)


@asynccontextmanager
async def subscribe(
    base: str,
    params: list[tuple[str, str]],
    *,
    token: str | None = None,
    last_event_id: str | None = None,
    cookies: dict[str, str] | None = None,
    origin: str | None = None,
) -> AsyncIterator[SSEConnection]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if origin is not None:
        headers["origin"] = origin
    client = client_for_loopback(timeout=httpx.Timeout(10.0, read=None), cookies=cookies)
    try:
        url = f"{base}{HUB}?{urlencode(params)}"
        async with sse_connect(
            url, last_event_id=last_event_id, headers=headers, client=client
        ) as stream:
            # The headers come once the subscription is registered: from here on it is live.
            assert stream.response.status_code == 200, stream.response.status_code
            yield stream
    finally:
        await client.aclose()
