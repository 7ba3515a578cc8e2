"""``Authenticator``: a request in, a :class:`~gateway.auth.rights.Grant` out.

Token claims (see docs/security.md)::

    {"sse": {"subscribe": ["orders.*"], "publish": ["orders.eu"], "admin": ["orders.*"]},
     "exp": 1732190000, "sub": "..."}

``sse.admin`` grants the operator endpoints on matching channels (:mod:`gateway.auth.rights`).

``exp`` is required: a token without one would grant its rights forever. A request without a token
gets the anonymous grant (``GATEWAY_ANONYMOUS_SUBSCRIBE`` / ``GATEWAY_ANONYMOUS_PUBLISH``); a
request with a bad token is refused even where anonymous access would have been enough, so a
client learns its token is broken instead of silently losing rights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jwt
from starlette.requests import HTTPConnection

from gateway.auth.errors import Unauthenticated
from gateway.auth.keys import KeySet, keys_from_settings
from gateway.auth.rights import Grant
from gateway.auth.tokens import find_token

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["CLAIM", "MAX_PATTERNS", "Authenticator"]

CLAIM = "sse"
MAX_PATTERNS = 256


class Authenticator:
    def __init__(
        self,
        keys: KeySet | None,
        *,
        anonymous: Grant,
        cookie_name: str = "sse_token",
        query_tokens: bool = True,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        self.keys = keys
        self.anonymous = anonymous
        self.cookie_name = cookie_name
        self.query_tokens = query_tokens
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        keys = keys_from_settings(settings)
        anonymous = Grant(
            subscribe=settings.anonymous_subscribe_patterns,
            publish=settings.anonymous_publish_patterns,
        )
        return cls(
            keys,
            anonymous=anonymous,
            cookie_name=settings.auth_cookie,
            query_tokens=settings.auth_query_tokens,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway,
        )

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def describe(self) -> list[tuple[int, str]]:
        """Start-up log lines (level, text): loud when anything is open. Never a key or token."""
        if self.keys is None:
            return [
                (
                    logging.WARNING,
                    "AUTH IS OFF: no GATEWAY_JWT_SECRET, GATEWAY_JWT_SECRET_FILE, "
                    "GATEWAY_JWT_PUBLIC_KEY_FILE or GATEWAY_JWT_JWKS_FILE configured, so ANYONE "
                    "can subscribe to and PUBLISH on every channel, and use the operator endpoints "
                    "(channel info, presence, disconnecting subscribers). Fine for local "
                    "development only.",
                )
            ]
        lines = [
            (
                logging.INFO,
                f"auth: JWT {', '.join(self.keys.algorithms)} from {self.keys.source}; "
                f"tokens from Authorization, cookie {self.cookie_name!r}"
                + (", ?access_token=" if self.query_tokens else ""),
            )
        ]
        if self.anonymous.subscribe:
            lines.append(
                (logging.INFO, f"anonymous subscribe on {', '.join(self.anonymous.subscribe)}")
            )
        if self.anonymous.publish:
            lines.append(
                (
                    logging.WARNING,
                    "ANONYMOUS PUBLISH IS ON: anyone may publish on "
                    + ", ".join(self.anonymous.publish),
                )
            )
        return lines

    def authenticate(self, request: HTTPConnection) -> Grant:
        """The caller's rights. Raises Unauthenticated for a token that is present but bad."""
        if self.keys is None:
            return Grant.everything()
        token = find_token(request, self.cookie_name, self.query_tokens)
        if token is None:
            return self.anonymous
        return self.grant_for(token)

    def grant_for(self, token: str) -> Grant:
        claims = self._decode(token)
        rights = claims.get(CLAIM, {})
        if not isinstance(rights, dict):
            raise Unauthenticated("invalid_token", f"the {CLAIM!r} claim must be an object")
        return Grant(
            subscribe=_patterns(rights, "subscribe"),
            publish=_patterns(rights, "publish"),
            admin=_patterns(rights, "admin"),
            authenticated=True,
            expires_at=_expiry(claims["exp"]),
            subject=claims.get("sub") if isinstance(claims.get("sub"), str) else None,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        assert self.keys is not None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.keys.key_for(token),
                algorithms=list(self.keys.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token_expired", "the token has expired") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # PyJWT's messages name the failed check, never the key; safe to return.
            raise Unauthenticated("invalid_token", f"invalid token: {exc}") from None
        return claims


def _expiry(exp: int | float) -> float | None:
    """``exp`` as a float for the close timer; ``None`` (no timer) past what a float holds."""
    try:
        return float(exp)
    except OverflowError:  # PyJWT accepts any integer, e.g. 10**400
        return None


def _patterns(rights: dict[str, Any], action: str) -> tuple[str, ...]:
    value: Sequence[Any] = rights.get(action, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(
            "invalid_token", f"the {CLAIM}.{action} claim must be a list of channel patterns"
        )
    if len(value) > MAX_PATTERNS:
        raise Unauthenticated("invalid_token", f"at most {MAX_PATTERNS} patterns per action")
    return tuple(value)
