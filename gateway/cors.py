"""CORS from settings: an exact-match origin allow-list, with credentials.

Starlette's CORSMiddleware does what we need: exact origin matching, ``Vary: Origin``, credentials,
and preflight answers for the headers our endpoints read (``Authorization`` and ``Content-Type`` on
``POST /publish``, ``Last-Event-ID`` on ``GET /subscribe``). ``*`` is accepted only with auth off
(checked in settings); it is then served without credentials, since there is nothing to protect.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway.settings import Settings

__all__ = ["ALLOWED_HEADERS", "install_cors"]

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")
PREFLIGHT_MAX_AGE = 600  # seconds a browser may cache a preflight answer


def install_cors(app: FastAPI, settings: Settings) -> None:
    origins = list(settings.cors_origin_list)
    if not origins:
        return  # same-origin only: browsers refuse cross-origin reads without these headers
    wildcard = origins == ["*"]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=not wildcard,
        allow_methods=["GET", "POST"],
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=["Retry-After", "Link", "Last-Event-ID", "Mercure-Last-Event-ID"],
        max_age=PREFLIGHT_MAX_AGE,
    )
