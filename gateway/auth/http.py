"""The HTTP side of auth: the dependency routes use, and the 401 answer.

A 401 carries ``WWW-Authenticate: Bearer`` (RFC 6750) so clients and proxies know how to
authenticate; the body is the usual ``{"error", "detail"}``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.auth.errors import Unauthenticated
from gateway.auth.rights import Grant
from gateway.auth.verify import Authenticator

__all__ = ["GrantDep", "current_grant", "install_auth_error_handler", "unauthenticated"]

log = logging.getLogger("gateway.api")


async def current_grant(request: Request) -> Grant:
    # async on purpose: a plain def dependency runs in FastAPI's thread pool, a thread hand-off per
    # request for what is CPU work of a few microseconds (a JWT check).
    authenticator: Authenticator = request.state.auth
    return authenticator.authenticate(request)


GrantDep = Annotated[Grant, Depends(current_grant)]


async def unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unauthenticated)
    log.info("rejected %s %s: 401 %s", request.method, request.url.path, exc.code)
    challenge = (
        'Bearer error="invalid_token"' if exc.code != "authentication_required" else "Bearer"
    )
    return JSONResponse(
        {"error": exc.code, "detail": exc.detail},
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


def install_auth_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(Unauthenticated, unauthenticated)
