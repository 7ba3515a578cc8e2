"""``create_app(settings)``: the lifespan builds broker and hub, runs the heartbeat and the
shutdown watcher, and closes everything on exit.

Also usable as a uvicorn factory (``uvicorn --factory gateway.app:create_app``), in which case the
settings come from ``GATEWAY_*`` environment variables; that is how ``--workers N`` starts each
worker process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from gateway.api import install_error_handlers, router
from gateway.auth import Authenticator
from gateway.auth.http import install_auth_error_handler
from gateway.broker import create_broker
from gateway.cors import install_cors
from gateway.hub import Hub
from gateway.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    authenticator = Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        broker = create_broker(settings)
        hub = Hub(
            broker, unsubscribe_delay=settings.unsubscribe_delay, replay_max=settings.replay_max
        )
        await broker.start()
        _announce(settings)
        for level, line in authenticator.describe():
            log.log(level, line)
        duties = [
            asyncio.create_task(hub.run_heartbeat(settings.keepalive_interval), name="heartbeat"),
            asyncio.create_task(_watch_for_shutdown(hub, settings), name="shutdown-watch"),
        ]
        try:
            yield {"settings": settings, "hub": hub, "broker": broker, "auth": authenticator}
        finally:
            for task in duties:
                task.cancel()
            await asyncio.gather(*duties, return_exceptions=True)
            await hub.close()
            await broker.close()

    app = FastAPI(
        title="SSE Gateway",
        summary="Redis-backed Server-Sent-Events broadcast with exact Last-Event-ID resume",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_auth_error_handler(app)
    install_cors(app, settings)
    app.include_router(router)
    return app


async def _watch_for_shutdown(hub: Hub, settings: Settings) -> None:
    """Start draining as soon as the server was asked to exit (SIGTERM/SIGINT).

    sse-starlette hooks uvicorn's exit handler and raises ``AppStatus.should_exit``; uvicorn then
    waits up to its graceful timeout for open responses, which is the window we drain in.
    """
    while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag set from a signal handler
        await asyncio.sleep(0.1)
    log.info(
        "shutdown requested: draining %d streams over %.1fs",
        len(hub.subscriptions),
        settings.drain_window,
    )
    hub.drain(settings.drain_window)


def _announce(settings: Settings) -> None:
    if settings.embedded:
        log.warning(
            "EMBEDDED STORE: no GATEWAY_REDIS_URL given, so messages and history live in this "
            "process only (lost on exit, not shared with other processes). Fine for trying it "
            "out; set --redis-url for anything else."
        )
    else:
        log.info("using redis at %s", _redact(settings.redis_url or ""))


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest
