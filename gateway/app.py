"""``create_app(settings)``: the lifespan builds broker and hub, runs the heartbeat and the
shutdown watcher, and closes everything on exit.

A plain ASGI app: ``gateway.asgi:app`` serves it under any ASGI server, with the settings from
``GATEWAY_*`` environment variables. The CLI serves it with the gateway's own HTTP protocol
(:mod:`gateway.server`), which answers the common subscribe and publish requests itself. The
CLI uses :func:`server_app`, the same app that also tunes the garbage collector of its (whole)
process; that is how ``--workers N`` starts each worker process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from gateway.api import install_error_handlers, router
from gateway.api.channels import router as operator_router
from gateway.api.history import router as history_router
from gateway.api.openapi import install_openapi
from gateway.auth import Authenticator, KeyConfigError
from gateway.auth.http import install_auth_error_handler
from gateway.auth.policy import start_refusal
from gateway.broker import create_broker
from gateway.broker.redis import RedisBroker
from gateway.channels import ChannelInfo
from gateway.console import router as console_router
from gateway.control import Control
from gateway.cors import install_cors
from gateway.hub import Hub
from gateway.limits import StreamSlots
from gateway.logs import RequestIdMiddleware
from gateway.mercure import install_mercure
from gateway.metrics import mark_worker_exited
from gateway.presence import Presence
from gateway.presence_store import PresenceStore
from gateway.ratelimit import RateLimits
from gateway.revocation import Revocation
from gateway.sampling import Sampler
from gateway.settings import Settings
from gateway.shutdown import DrainOnSignal

__all__ = ["create_app", "server_app"]

log = logging.getLogger("gateway")

GC_THRESHOLDS = (50_000, 50, 50)  # CPython's defaults are (700, 10, 10)


def server_app() -> FastAPI:
    """The CLI's uvicorn factory: a process of its own, so its GC may be tuned (_tune_gc)."""
    return create_app(tune_gc=True)


def create_app(settings: Settings | None = None, *, tune_gc: bool = False) -> FastAPI:
    settings = settings or Settings()
    refusal = start_refusal(settings)  # also when run as a uvicorn factory, past the CLI
    if refusal is not None:
        raise KeyConfigError(refusal)
    authenticator = Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        broker = create_broker(settings)
        hub = Hub(
            broker, unsubscribe_delay=settings.unsubscribe_delay, replay_max=settings.replay_max
        )
        await broker.start()
        _announce(settings)
        slots = StreamSlots(settings.max_connections)
        sampler = Sampler(hub, broker, slots)
        drain = DrainOnSignal(hub, settings.drain_window)
        drain.install()
        for level, line in authenticator.describe():
            log.log(level, line)
        duties = [
            asyncio.create_task(hub.run_heartbeat(settings.keepalive_interval), name="heartbeat"),
            asyncio.create_task(hub.run_watchdog(settings.send_timeout), name="write-watchdog"),
            asyncio.create_task(_watch_for_shutdown(hub, settings), name="shutdown-watch"),
            asyncio.create_task(sampler.run(), name="metrics-sampler"),
        ]
        operator = await _operator_tools(hub, broker, settings)
        presence: Presence = operator["presence"]
        duties.append(asyncio.create_task(presence.run(), name="presence"))
        rate_limits = RateLimits.from_settings(settings)
        ops = {"slots": slots, "sampler": sampler, "rate_limits": rate_limits, **operator}
        if tune_gc:
            _tune_gc()
        try:
            yield {"settings": settings, "hub": hub, "broker": broker, **ops, "auth": authenticator}
        finally:
            await drain.close()
            for task in duties:
                task.cancel()
            await asyncio.gather(*duties, return_exceptions=True)
            await presence.close()
            await hub.close()
            await broker.close()
            await rate_limits.aclose()
            mark_worker_exited()

    app = FastAPI(
        # FastAPI's native OpenTelemetry asks the global providers on every request whether one
        # is configured (os.environ look-ups, ~4% of a publish); we export Prometheus instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="SSE Gateway",
        summary="Redis-backed Server-Sent-Events broadcast with exact Last-Event-ID resume",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_auth_error_handler(app)
    install_cors(app, settings)
    app.add_middleware(RequestIdMiddleware)  # added last: the outermost middleware
    app.include_router(router)
    app.include_router(operator_router)
    app.include_router(history_router)
    app.include_router(console_router)
    install_openapi(app)
    install_mercure(app, settings)
    return app


async def _watch_for_shutdown(hub: Hub, settings: Settings) -> None:
    """Backstop for :mod:`gateway.shutdown`: drain when anything else set sse-starlette's
    ``AppStatus.should_exit`` (no signal handler of ours installed, e.g. an embedding server)."""
    while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag set from a signal handler
        await asyncio.sleep(0.1)
    log.info(
        "shutdown requested: draining %d streams over %.1fs",
        len(hub.subscriptions),
        settings.drain_window,
    )
    hub.drain(settings.drain_window)


async def _operator_tools(hub: Hub, broker: RedisBroker, settings: Settings) -> dict[str, Any]:
    """Presence, channel info and revocation, sharing one control channel and the command client.
    Each process (worker) is one replica for presence."""
    control = Control(hub, broker)
    replica = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    store = PresenceStore(broker.client, settings.key_prefix, replica, settings.presence_ttl)
    presence = Presence(
        hub, store, control, ttl=settings.presence_ttl, events=settings.presence_events
    )
    await control.start()
    return {
        "presence": presence,
        "channel_info": ChannelInfo(broker.client, settings.key_prefix, store),
        "revocation": Revocation(hub, control),
    }


def _tune_gc() -> None:
    """Every open stream is a few dozen long-lived container objects, so with CPython's default
    thresholds (700, 10, 10) the cyclic GC keeps re-scanning a heap that only grows while clients
    connect: about half the CPU of connecting 5000 subscribers (docs/performance.md). Freezing
    what start-up built takes it out of every later scan; rarer young collections cost little
    memory, since a request leaves almost no cyclic garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
