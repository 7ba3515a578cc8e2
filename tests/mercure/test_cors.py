"""Browsers on another origin: CORS with credentials (the cookie), and the headers they may read."""

from __future__ import annotations

import pytest

from tests.mercure.conftest import SUBSCRIBER_KEY, legacy_token
from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ORIGIN = "https://app.test"


async def test_cross_origin_subscriber_with_cookie(own_redis, start_hub):
    hub = start_hub(own_redis.url, GATEWAY_CORS_ORIGINS=ORIGIN)
    topic = unique()
    token = legacy_token(SUBSCRIBER_KEY, subscribe=[topic])
    async with client_for_loopback() as client:
        preflight = await client.options(
            hub.url + HUB,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-credentials"] == "true"
        refused = await client.options(
            hub.url + HUB,
            headers={"origin": "https://evil.test", "access-control-request-method": "GET"},
        )
        assert refused.headers.get("access-control-allow-origin") != "https://evil.test"
    cookies = {"mercureAuthorization": token}
    async with subscribe(hub.url, [("topic", topic)], cookies=cookies, origin=ORIGIN) as stream:
        headers = stream.response.headers
        assert headers["access-control-allow-origin"] == ORIGIN
        assert headers["access-control-allow-credentials"] == "true"
        assert "link" in headers["access-control-expose-headers"].lower()
        await publish(hub.url, topic=topic, data="private via cookie", private="on")
        assert (await stream.next_event()).data == "private via cookie"


async def test_draft08_cookie_name_is_accepted(hub):
    topic = unique()
    cookies = {"__Secure-mercure_access_token": legacy_token(SUBSCRIBER_KEY, subscribe=[topic])}
    async with subscribe(hub.url, [("topic", topic)], cookies=cookies) as stream:
        await publish(hub.url, topic=topic, data="ok", private="on")
        assert (await stream.next_event()).data == "ok"
