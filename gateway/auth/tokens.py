"""Where a request's token comes from, in this order: ``Authorization: Bearer``, the auth cookie,
the ``access_token`` query parameter.

* The header is for programs; nothing stores it along the way.
* The cookie is for browsers: ``EventSource(url, {withCredentials: true})`` sends it, cross-origin
  too when CORS allows credentials. Set it ``HttpOnly; Secure; SameSite``.
* The query parameter is for clients that can set neither (a plain ``EventSource`` without
  cookies). It is the weakest: URLs end up in access logs, proxy logs and browser history, so keep
  such tokens short-lived and subscribe-only, or turn the source off
  (``GATEWAY_AUTH_QUERY_TOKENS=false``).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from gateway.auth.errors import Unauthenticated

__all__ = ["MAX_TOKEN_LENGTH", "QUERY_PARAMETER", "find_token"]

QUERY_PARAMETER = "access_token"
MAX_TOKEN_LENGTH = 8192  # a token is parsed and its signature checked; bound the work first


def find_token(request: HTTPConnection, cookie_name: str, allow_query: bool) -> str | None:
    """The first token the request carries; ``None`` when it carries none."""
    token = _from_header(request.headers.get("authorization"))
    if token is None:
        token = request.cookies.get(cookie_name) or None
    if token is None and allow_query:
        token = request.query_params.get(QUERY_PARAMETER) or None
    if token is not None and len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("invalid_token", f"the token is over {MAX_TOKEN_LENGTH} characters")
    return token


def _from_header(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("invalid_token", "send the token as 'Authorization: Bearer <token>'")
    return token
