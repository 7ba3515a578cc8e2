"""Every error a client can cause becomes a 4xx with ``{"error": code, "detail": ...}``.

Each rejection is logged once, here, at INFO (it is the client's problem, not ours); the body of
the request is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway.auth.errors import Unauthenticated
from gateway.auth.http import unauthenticated
from gateway.errors import BrokerUnavailable, GatewayError

__all__ = ["error_response", "install_error_handlers", "response_for"]

log = logging.getLogger("gateway.api")


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _log(request: Request, status: int, code: str, detail: str) -> None:
    log.info(
        "rejected %s %s: %d %s: %s", request.method, request.url.path, status, code, detail[:300]
    )


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, BrokerUnavailable):
        log.warning("unavailable %s %s: %s", request.method, request.url.path, exc.detail)
    else:
        _log(request, exc.status, exc.code, exc.detail)
    return error_response(exc.status, exc.code, exc.detail, headers)


async def response_for(request: Request, exc: GatewayError) -> JSONResponse:
    """The answer to an error a request caused: what the app's exception handlers answer (they
    are these functions), for callers outside the app (gateway.server.hot)."""
    if isinstance(exc, Unauthenticated):
        return await unauthenticated(request, exc)
    return await _gateway_error(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    )
    _log(request, 400, "invalid_request", detail)
    return error_response(400, "invalid_request", detail)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    _log(request, exc.status_code, code, str(exc.detail))
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
