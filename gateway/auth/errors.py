"""The auth error tree (drawn in the package docstring)."""

from __future__ import annotations

from gateway.errors import ClientError

__all__ = ["AuthError", "Forbidden", "KeyConfigError", "Unauthenticated"]


class AuthError(ClientError):
    pass


class Unauthenticated(AuthError):
    """401: answered with ``WWW-Authenticate: Bearer`` (RFC 6750) by :mod:`gateway.auth.http`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(401, code, detail)


class Forbidden(AuthError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", detail)


class KeyConfigError(ValueError):
    """Raised at start-up; the CLI turns it into exit code 2. Never carries key material."""
