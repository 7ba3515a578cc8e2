"""The Mercure protocol (https://mercure.rocks) served by the gateway's own core.

    parse.py        subscribe selectors and the publish form; every bad input a 400/413/415
    uritemplate.py  RFC 6570 URI Template matching (0.x topic selectors)
    selectors.py    selector kinds (template, exact, urlpattern), compiled once and shared
    auth.py         tokens (header, query, cookie), publisher/subscriber keys, both claim dialects
    update.py       an update as stored in the Mercure log, and its SSE frame (once per process)
    resume.py       Last-Event-ID (a publisher's id) -> log position, through the id index
    stream.py       the Mercure log channel, the per-subscription filter and format
    subscriptions.py  subscription events and the all-replica registry behind the API
    routes.py       GET/POST /.well-known/mercure

Errors are the gateway's (gateway.errors, gateway.auth.errors), so every one answers with the usual
``{"error", "detail"}`` body; nothing here defines an exception of its own except the two compile
errors, both ValueErrors turned into 400 (request) or 401 (token) where they are raised:

    ValueError
    ├── SelectorError    a selector that cannot be compiled (selectors.py)
    └── TemplateError    not a URI Template; the selector is then compared exactly (uritemplate.py)

Design and its limits: docs/design/mercure.md.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from gateway.mercure.auth import MercureAuth
from gateway.mercure.routes import mercure_router
from gateway.mercure.subscriptions import ActiveSubscriptions
from gateway.settings import Settings

__all__ = ["install_mercure"]

log = logging.getLogger("gateway.mercure")


def install_mercure(app: FastAPI, settings: Settings) -> None:
    """Serve the hub when GATEWAY_MERCURE is on. Loads its keys now (start-up), so a bad key
    stops the gateway with a clear message instead of failing every request."""
    if not settings.mercure:
        return
    auth = MercureAuth.from_settings(settings)
    log.info(auth.describe())
    active = None
    if settings.mercure_subscriptions:
        active = ActiveSubscriptions(settings.mercure_subscriptions_ttl)
    app.include_router(mercure_router(auth, active))
