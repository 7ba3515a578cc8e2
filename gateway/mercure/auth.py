"""Mercure authorization: where the token comes from, which key checks it, what it grants.

* Token: ``Authorization: Bearer``, else the ``authorization`` query parameter (0.x), else the
  ``mercureAuthorization`` cookie (0.x) or ``__Secure-mercure_access_token`` (draft-08) - the
  order the spec gives. A present but bad token is a 401 even where anonymous access would do.
* Keys: separate publisher and subscriber keys, each loaded by gateway.auth.keys (HMAC secret,
  PEM public key or JWKS), so algorithm pinning and the weak-secret check are the gateway's own.
* Claims, two dialects told apart by the token's ``typ`` header:
  - 0.x: ``mercure.publish`` / ``mercure.subscribe`` (topic selectors, URI Templates) and
    ``mercure.payload``. ``exp`` is optional, as in the reference hub (its sample tokens have none).
  - draft-08 (``typ`` ``at+jwt``): RFC 9068 access tokens, ``exp`` required, ``aud``/``iss``
    checked when GATEWAY_MERCURE_AUDIENCE / _ISSUER are set, rights in ``authorization_details``
    of type ``https://mercure.rocks/authorization-detail``; a malformed detail rejects the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from starlette.requests import HTTPConnection

from gateway.auth.errors import Forbidden, KeyConfigError, Unauthenticated
from gateway.auth.keys import KeySet, load_keys
from gateway.auth.tokens import MAX_TOKEN_LENGTH
from gateway.mercure.selectors import Matcher, SelectorError, any_matches, compile_matcher
from gateway.settings import Settings

__all__ = ["DETAIL_TYPE", "MercureAuth", "MercureGrant"]

log = logging.getLogger("gateway.mercure")

DETAIL_TYPE: Final = "https://mercure.rocks/authorization-detail"
COOKIES: Final = ("mercureAuthorization", "__Secure-mercure_access_token")
QUERY_PARAMETER: Final = "authorization"
MAX_RIGHTS: Final = 256


@dataclass(frozen=True, slots=True)
class Right:
    """One grant: compiled to test topics, raw to pick a subscription's payload."""

    kind: str
    selector: str
    matches: Matcher
    payload: Any = None


@dataclass(frozen=True, slots=True)
class MercureGrant:
    subscribe: tuple[Right, ...] = ()
    publish: tuple[Right, ...] = ()
    authenticated: bool = False
    expires_at: float | None = None
    payload: Any = None  # 0.x mercure.payload
    readers: tuple[Matcher, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Asked once per subscriber per private update: the matchers ready in one tuple.
        object.__setattr__(self, "readers", tuple(right.matches for right in self.subscribe))

    def may_read(self, topics: tuple[str, ...]) -> bool:
        """A private update: allowed when any of its topics matches a subscribe right."""
        return any_matches(self.readers, topics)

    def require_publish(self, topics: tuple[str, ...]) -> None:
        """Every topic of an update must be granted, else nothing is published."""
        for topic in topics:
            if not any(right.matches(topic) for right in self.publish):
                if not self.authenticated:
                    raise Unauthenticated("authentication_required", "a token is required")
                raise Forbidden(f"this token may not publish on {topic!r}")

    def payload_for(self, kind: str, selector: str) -> Any:
        """draft-08: the payload of the first subscribe detail matching the subscription's own
        selector taken as a topic; 0.x: mercure.payload."""
        for right in self.subscribe:
            if right.payload is not None and (
                right.selector == selector or right.matches(selector)
            ):
                return right.payload
        return self.payload


ANONYMOUS: Final = MercureGrant()


@dataclass(slots=True)
class MercureAuth:
    publisher: KeySet | None
    subscriber: KeySet | None
    anonymous: bool = False
    audience: str | None = None
    issuer: str | None = None
    base: str = "http://localhost/.well-known/mercure"
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> MercureAuth:
        weak = settings.mercure_weak_jwt_keys
        publisher = _keys(
            "GATEWAY_MERCURE_PUBLISHER_JWT_KEY",
            settings.mercure_publisher_jwt_key,
            settings.mercure_publisher_jwt_alg,
            weak,
        )
        subscriber = _keys(
            "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY",
            settings.mercure_subscriber_jwt_key,
            settings.mercure_subscriber_jwt_alg,
            weak,
        )
        return cls(
            publisher=publisher,
            subscriber=subscriber or publisher,
            anonymous=settings.mercure_anonymous,
            audience=settings.mercure_audience,
            issuer=settings.mercure_issuer,
        )

    def describe(self) -> str:
        def where(keys: KeySet | None) -> str:
            return f"{', '.join(keys.algorithms)} from {keys.source}" if keys else "NO KEY"

        return (
            f"mercure hub: publisher key {where(self.publisher)}; subscriber key "
            f"{where(self.subscriber)}; anonymous subscribers {'on' if self.anonymous else 'off'}"
        )

    def for_publisher(self, request: HTTPConnection, base: str) -> MercureGrant:
        token = find_token(request)
        if token is None or self.publisher is None:
            return ANONYMOUS
        return self._grant(token, self.publisher, base)

    def for_subscriber(self, request: HTTPConnection, base: str) -> MercureGrant:
        """Raises Unauthenticated when there is no token and anonymous access is off."""
        token = find_token(request)
        if token is None:
            if not self.anonymous:
                raise Unauthenticated("authentication_required", "a token is required")
            return ANONYMOUS
        if self.subscriber is None:
            raise Unauthenticated("invalid_token", "this hub has no subscriber key")
        return self._grant(token, self.subscriber, base)

    def _grant(self, token: str, keys: KeySet, base: str) -> MercureGrant:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid_token", f"invalid token: {exc}") from None
        if str(header.get("typ", "")).lower().removeprefix("application/") == "at+jwt":
            return _access_token(self._decode(token, keys, strict=True), base)
        return _legacy(self._decode(token, keys, strict=False), base)

    def _decode(self, token: str, keys: KeySet, *, strict: bool) -> dict[str, Any]:
        required = ["exp", "iss", "aud"] if strict else []
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                keys.key_for(token),
                algorithms=list(keys.algorithms),
                audience=self.audience if strict else None,
                issuer=self.issuer if strict else None,
                options={
                    "require": required,
                    "verify_aud": strict and self.audience is not None,
                    "verify_iss": strict and self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("invalid_token", "the token has expired") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthenticated("invalid_token", f"invalid token: {exc}") from None
        return claims


def find_token(request: HTTPConnection) -> str | None:
    token = _bearer(request.headers.get("authorization"))
    if token is None:
        token = request.query_params.get(QUERY_PARAMETER) or None
    for name in COOKIES:
        if token is None:
            token = request.cookies.get(name) or None
    if token is not None and len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("invalid_token", f"the token is over {MAX_TOKEN_LENGTH} characters")
    return token


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("invalid_request", "send the token as 'Authorization: Bearer <jws>'")
    return token.strip()


def _keys(setting: str, value: Any, algorithms: str, weak: bool = False) -> KeySet | None:
    """A key setting: a path to an existing file (PEM, JWKS, or a secret), else the secret;
    refusals name ``setting``."""
    if value is None:
        return None
    text = value.get_secret_value()
    algs = tuple(item.strip() for item in algorithms.split(",") if item.strip())
    path = Path(text) if len(text) < 4096 and "\n" not in text else None
    if (path is None or not path.is_file()) and weak:
        # GATEWAY_MERCURE_WEAK_JWT_KEYS: Mercure's conformance suite signs with the reference
        # hub's sample key, which our weak-secret check rightly refuses. HMAC only, and said so.
        log.warning("MERCURE WEAK JWT KEYS ACCEPTED: never use this setting in production")
        if any(not name.startswith("HS") for name in algs):
            raise KeyConfigError("GATEWAY_MERCURE_WEAK_JWT_KEYS is for HMAC secrets only")
        return KeySet(
            algorithms=algs or ("HS256",), source="a secret (weak keys on)", key=text.encode()
        )
    if path is None or not path.is_file():
        return load_keys(
            secret=text,
            secret_file=None,
            public_key_file=None,
            jwks_file=None,
            algorithms=algs,
            setting=setting,
        )
    head = path.read_bytes()[:64].lstrip()
    return load_keys(
        secret=None,
        secret_file=path if not head.startswith((b"-----BEGIN", b"{")) else None,
        public_key_file=path if head.startswith(b"-----BEGIN") else None,
        jwks_file=path if head.startswith(b"{") else None,
        algorithms=algs,
        setting=setting,
    )


def _expiry(claims: dict[str, Any]) -> float | None:
    exp = claims.get("exp")
    try:
        return float(exp) if exp is not None else None
    except (OverflowError, TypeError, ValueError):
        return None


def _legacy(claims: dict[str, Any], base: str) -> MercureGrant:
    rights = claims.get("mercure", {})
    if not isinstance(rights, dict):
        raise Unauthenticated("invalid_token", "the 'mercure' claim must be an object")
    return MercureGrant(
        subscribe=_selectors(rights.get("subscribe", []), "template", base),
        publish=_selectors(rights.get("publish", []), "template", base),
        authenticated=True,
        expires_at=_expiry(claims),
        payload=rights.get("payload"),
    )


def _selectors(value: Any, kind: str, base: str, payload: Any = None) -> tuple[Right, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated("invalid_token", "topic selectors must be a list of strings")
    if len(value) > MAX_RIGHTS:
        raise Unauthenticated("invalid_token", f"at most {MAX_RIGHTS} selectors per action")
    try:
        return tuple(
            Right(kind, item, compile_matcher(kind, item, base), payload) for item in value
        )
    except SelectorError as exc:
        raise Unauthenticated("invalid_token", str(exc)) from None


def _access_token(claims: dict[str, Any], base: str) -> MercureGrant:
    details = claims.get("authorization_details", [])
    if not isinstance(details, list) or len(details) > MAX_RIGHTS:
        raise Unauthenticated("invalid_token", "authorization_details must be a (short) list")
    subscribe: list[Right] = []
    publish: list[Right] = []
    for detail in details:
        if not isinstance(detail, dict):
            raise Unauthenticated("invalid_token", "an authorization detail must be an object")
        if detail.get("type") != DETAIL_TYPE:
            continue
        actions, rights = _detail(detail, base)
        if "subscribe" in actions:
            subscribe.extend(rights)
        if "publish" in actions:
            publish.extend(rights)
    return MercureGrant(
        subscribe=tuple(subscribe),
        publish=tuple(publish),
        authenticated=True,
        expires_at=_expiry(claims),
    )


def _detail(detail: dict[str, Any], base: str) -> tuple[list[str], list[Right]]:
    actions, topics, payload = detail.get("actions"), detail.get("topics"), detail.get("payload")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise Unauthenticated("invalid_token", "actions must be a non-empty list of strings")
    if not isinstance(topics, list) or not topics or len(topics) > MAX_RIGHTS:
        raise Unauthenticated("invalid_token", "topics must be a non-empty list")
    if payload is not None and not isinstance(payload, dict):
        raise Unauthenticated("invalid_token", "payload must be an object")
    rights: list[Right] = []
    for topic in topics:
        if not isinstance(topic, dict) or not isinstance(topic.get("match"), str):
            raise Unauthenticated("invalid_token", "a topic matcher must be {'match': ...}")
        kind = topic.get("match_type", "exact")
        if kind not in ("exact", "urlpattern"):
            raise Unauthenticated("invalid_token", f"unsupported match_type {kind!r}")
        rights.extend(_selectors([topic["match"]], kind, base, payload))
    return actions, rights
