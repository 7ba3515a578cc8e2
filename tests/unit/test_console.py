"""The console page and its switch (gateway.console), and the history route's rights, in-process
on the embedded store through the app's own lifespan."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.settings import Settings

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)  # what a server does with the lifespan's state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield http


async def test_embedded_mode_serves_the_page_and_its_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="console/console.js"' in page.text and "https://" not in page.text  # no CDN
    script = await client.get("/console/console.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert (await client.get("/console/console.css")).headers["content-type"].startswith("text/css")
    other = await client.get("/console/secrets.py")
    assert other.status_code == 400 and other.json()["error"] == "invalid_request"


@pytest.mark.parametrize("settings", [Settings(console=False)])
async def test_switched_off_it_is_our_404(client: httpx.AsyncClient) -> None:
    for path in ("/", "/console/console.js"):
        answer = await client.get(path)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_it_is_off_by_default_with_a_redis_url() -> None:
    assert not Settings(redis_url="redis://127.0.0.1:1/0").console_enabled
    assert Settings(redis_url="redis://127.0.0.1:1/0", console=True).console_enabled
    assert Settings().console_enabled


@pytest.mark.parametrize("settings", [Settings(jwt_secret=secrets.token_hex(32))])
async def test_history_needs_the_right_to_subscribe(client: httpx.AsyncClient) -> None:
    answer = await client.get("/history/orders")
    assert answer.status_code == 401 and answer.json()["error"] == "authentication_required"
