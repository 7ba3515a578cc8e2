"""Secure by default (gateway.auth.policy) and the admin right (gateway.auth.rights, verify)."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest

from gateway.auth import Authenticator, Forbidden, Grant, Unauthenticated
from gateway.auth.keys import KeySet
from gateway.auth.policy import start_refusal
from gateway.settings import Settings

SECRET = secrets.token_urlsafe(48)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({}, False),  # the embedded store stays open for trying it out
        ({"auth": "off"}, False),
        ({"redis_url": REDIS}, True),
        ({"redis_url": REDIS, "auth": "off"}, False),
        ({"redis_url": REDIS, "jwt_secret": SECRET}, False),
        ({"redis_url": REDIS, "jwt_secret": SECRET, "auth": "off"}, True),  # contradiction
    ],
)
def test_a_gateway_on_redis_needs_a_key_or_an_explicit_off(values: dict[str, str], refused: bool):
    refusal = start_refusal(Settings(**values))  # type: ignore[arg-type]
    assert (refusal is not None) == refused
    if refusal is not None:
        assert "\n" not in refusal and "GATEWAY_" in refusal


def test_the_refusal_names_what_to_set():
    refusal = start_refusal(Settings(redis_url=REDIS))
    assert refusal is not None
    assert "GATEWAY_JWT_SECRET" in refusal and "GATEWAY_AUTH=off" in refusal


def test_auth_accepts_only_auto_or_off():
    with pytest.raises(ValueError, match="auth"):
        Settings(auth="no")


def authenticator() -> Authenticator:
    keys = KeySet(algorithms=("HS256",), source="test", key=SECRET.encode())
    return Authenticator(keys, anonymous=Grant(subscribe=("public.*",)))


def grant_for(rights: object) -> Grant:
    token = jwt.encode({"sse": rights, "exp": time.time() + 60}, SECRET, algorithm="HS256")
    return authenticator().grant_for(token)


def test_the_admin_claim_grants_operator_rights_on_matching_channels():
    grant = grant_for({"subscribe": ["*"], "admin": ["ops.*"]})
    assert grant.admin == ("ops.*",)
    grant.require("admin", ("ops.eu",))
    with pytest.raises(Forbidden):
        grant.require("admin", ("orders",))
    with pytest.raises(Forbidden):
        grant.require_everywhere("admin")
    grant_for({"admin": ["*"]}).require_everywhere("admin")


def test_subscribe_and_publish_rights_grant_no_admin():
    grant = grant_for({"subscribe": ["*"], "publish": ["*"]})
    with pytest.raises(Forbidden):
        grant.require("admin", ("any",))


def test_anonymous_callers_are_asked_for_a_token():
    with pytest.raises(Unauthenticated):
        authenticator().anonymous.require("admin", ("public.news",))
    with pytest.raises(Unauthenticated):
        authenticator().anonymous.require_everywhere("admin")


def test_a_malformed_admin_claim_is_an_invalid_token():
    with pytest.raises(Unauthenticated, match="admin"):
        grant_for({"admin": "ops.*"})


def test_with_auth_off_everything_is_open_and_the_warning_says_so():
    Grant.everything().require_everywhere("admin")
    off = Authenticator(None, anonymous=Grant()).describe()
    assert "operator endpoints" in off[0][1]
