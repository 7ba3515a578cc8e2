"""The console page: ``GET /`` and its two assets, shipped in this package (no CDN, no build).

The page (``index.html``, ``console.js``, ``console.css``) uses only the public HTTP API. It is
served when ``GATEWAY_CONSOLE`` is true, which by default it is in embedded mode only: a shared
deployment shows it only when the operator asks for it. A strict Content-Security-Policy keeps
the page to its own script and its own origin.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.api.deps import SettingsDep
from gateway.api.openapi import errors
from gateway.errors import ClientError

__all__ = ["router"]

router = APIRouter()

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def _asset(name: str, media_type: str, enabled: bool) -> Response:
    if not enabled:
        raise ClientError(404, "not_found", "the console is off (GATEWAY_CONSOLE)")
    body = files(__package__).joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers=HEADERS)


@router.get(
    "/",
    tags=["console"],
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "the page"}, **errors(404)},
)
async def console_page(settings: SettingsDep) -> Response:
    """The console page (on by default in embedded mode; GATEWAY_CONSOLE)."""
    return _asset("index.html", "text/html; charset=utf-8", settings.console_enabled)


@router.get(
    "/console/{name}",
    tags=["console"],
    response_class=Response,
    responses={
        200: {"content": {"text/javascript": {}, "text/css": {}}, "description": "an asset"},
        **errors(400, 404),
    },
)
async def console_asset(
    name: Literal["console.js", "console.css"], settings: SettingsDep
) -> Response:
    """The console's script and style sheet."""
    return _asset(name, ASSETS[name], settings.console_enabled)
