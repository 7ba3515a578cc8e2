"""Token extraction, verification and channel rights (gateway/auth), without a server."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest
from starlette.requests import Request

from gateway.auth import Authenticator, Forbidden, Grant, Unauthenticated
from gateway.auth.keys import KeySet
from gateway.auth.tokens import MAX_TOKEN_LENGTH, find_token

SECRET = secrets.token_urlsafe(48)


def request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "headers": raw, "query_string": query.encode()})


def auth(**kw: Any) -> Authenticator:
    keys = KeySet(algorithms=("HS256",), source="test", key=SECRET.encode())
    kw.setdefault("anonymous", Grant(subscribe=("public.*",)))
    return Authenticator(keys, **kw)


def mint(claims: dict[str, Any] | None = None, **extra: Any) -> str:
    body = {"sse": {"subscribe": ["orders.*"], "publish": ["orders.eu"]}, "exp": time.time() + 60}
    body.update(claims or {}, **extra)
    return jwt.encode(body, SECRET, algorithm="HS256")


def test_token_sources_in_order():
    header, cookie, query = mint(sub="h"), mint(sub="c"), mint(sub="q")
    both = request(
        {"authorization": f"Bearer {header}", "cookie": f"sse_token={cookie}"},
        f"access_token={query}",
    )
    assert find_token(both, "sse_token", True) == header
    assert (
        find_token(
            request({"cookie": f"sse_token={cookie}"}, f"access_token={query}"), "sse_token", True
        )
        == cookie
    )
    assert find_token(request(query=f"access_token={query}"), "sse_token", True) == query
    assert find_token(request(query=f"access_token={query}"), "sse_token", False) is None
    assert find_token(request(), "sse_token", True) is None


def test_oversized_tokens_are_refused_before_parsing():
    with pytest.raises(Unauthenticated):
        find_token(request(query="access_token=" + "a" * (MAX_TOKEN_LENGTH + 1)), "t", True)


def test_claims_become_a_grant():
    grant = auth().grant_for(mint())
    assert grant.authenticated and grant.subject is None
    assert grant.allows("subscribe", "orders.eu.1") and not grant.allows("subscribe", "billing")
    assert grant.allows("publish", "orders.eu") and not grant.allows("publish", "orders.us")
    assert grant.expires_at is not None and grant.expires_at > time.time()


def test_patterns_are_case_sensitive_and_whole_name():
    grant = Grant(subscribe=("orders.*", "user.42"), authenticated=True)
    assert not grant.allows("subscribe", "ORDERS.x")
    assert not grant.allows("subscribe", "user.421")
    assert not grant.allows("subscribe", "xorders.1")


def test_missing_rights_claim_grants_nothing():
    grant = auth().grant_for(jwt.encode({"exp": time.time() + 60}, SECRET, algorithm="HS256"))
    with pytest.raises(Forbidden):
        grant.require("subscribe", ("orders.1",))


def test_anonymous_callers_get_401_not_403():
    grant = auth().authenticate(request())
    grant.require("subscribe", ("public.x",))
    with pytest.raises(Unauthenticated) as error:
        grant.require("publish", ("public.x",))
    assert error.value.status == 401


def test_a_bad_token_is_refused_even_where_anonymous_access_would_do():
    with pytest.raises(Unauthenticated):
        auth().authenticate(request(query="access_token=garbage"))


def test_auth_off_grants_everything_and_ignores_tokens():
    grant = Authenticator(None, anonymous=Grant()).authenticate(request(query="access_token=x"))
    grant.require("publish", ("anything",))
    grant.require("subscribe", ("anything",))
    assert grant.expires_at is None


@pytest.mark.parametrize(
    "sse",
    [
        "orders.*",
        ["orders.*"],
        {"subscribe": "orders.*"},
        {"subscribe": [1, 2]},
        {"subscribe": ["x"] * 257},
    ],
)
def test_malformed_rights_claims_are_401(sse: object):
    with pytest.raises(Unauthenticated):
        auth().grant_for(mint(sse=sse))


def test_audience_and_issuer_are_checked_when_configured():
    checked = auth(audience="gw", issuer="https://idp")
    checked.grant_for(mint(aud="gw", iss="https://idp"))
    for claims in ({"aud": "other", "iss": "https://idp"}, {"aud": "gw"}, {"iss": "https://idp"}):
        with pytest.raises(Unauthenticated):
            checked.grant_for(mint(claims))


def test_describe_never_names_the_key():
    lines = auth(anonymous=Grant(publish=("inbox.*",))).describe()
    text = " ".join(line for _, line in lines)
    assert SECRET not in text and "ANONYMOUS PUBLISH" in text
    off = Authenticator(None, anonymous=Grant()).describe()
    assert "AUTH IS OFF" in off[0][1]


def test_absurd_expiry_does_not_crash():
    assert auth().grant_for(mint(exp=10**400)).expires_at is None
    assert auth().grant_for(mint(exp=10**30)).expires_at == 1e30
