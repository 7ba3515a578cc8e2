"""Property-based fuzz of the HTTP API against a real gateway process (hypothesis + httpx).

Property: whatever method, path, query, headers, token claims and body a client sends, the
gateway answers with a status below 500 (errors as JSON), and it is still alive and has logged
no crash at the end. Bounded by example count (a few hundred requests, ~10-20 s on 2 cores).

Why not schemathesis: generating from our OpenAPI schema would mostly produce *valid* requests;
the attack surface here is what the schema does not describe (tokens, cookies, raw bodies,
Last-Event-ID), and hypothesis alone keeps the suite free of another pytest plugin.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import Keys, read_log
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))

_safe_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=80
)
_any_text = st.text(max_size=120)
_channel = st.one_of(
    st.sampled_from(["pub.a", "pub.b", "priv.x", "orders", "__keyspace@0__:x", "*", ".."]),
    _any_text,
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_any_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _token(draw: st.DrawFn, keys: Keys) -> str:
    kind = draw(st.sampled_from(["claims", "garbage", "foreign", "expired"]))
    if kind == "garbage":
        return draw(_safe_text)
    # an offset, not an absolute time: hypothesis replays draws and needs them reproducible
    lifetime = -60 if kind == "expired" else draw(st.one_of(st.just(600), st.integers(600)))
    claims: dict[str, Any] = {"exp": int(time.time()) + lifetime}
    claims["sse"] = draw(
        st.one_of(
            _json,
            st.fixed_dictionaries(
                {"subscribe": st.lists(_channel, max_size=3), "publish": st.lists(_channel)}
            ),
        )
    )
    secret = "f" * 40 if kind == "foreign" else keys.secret
    return jwt.encode(claims, secret, algorithm="HS256")


@st.composite
def requests(draw: st.DrawFn, keys: Keys) -> dict[str, Any]:
    channel = quote(draw(st.one_of(st.sampled_from(["pub.a", "pub.b"]), _channel)), safe="")
    path = draw(
        st.sampled_from(
            [
                f"/publish/{channel}",
                f"/subscribe/{channel}",
                "/subscribe",
                "/healthz",
                "/readyz",
                f"/{channel}",
            ]
        )
    )
    params = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["channel", "event", "lastEventId", "access_token", "x"]),
                _any_text,
            ),
            max_size=5,
        )
    )
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        token = draw(_token(keys))
        where = draw(st.sampled_from(["authorization", "cookie", "query"]))
        if where == "authorization":
            headers["authorization"] = f"Bearer {token}"
        elif where == "cookie":
            headers["cookie"] = f"sse_token={token}"
        else:
            params.append(("access_token", token))
    if path.startswith("/publish") and draw(st.booleans()):
        headers["content-type"] = draw(
            st.sampled_from(["application/json", "application/x-ndjson"])
        )
    for name in draw(st.lists(st.sampled_from(["last-event-id", "content-type", "accept"]))):
        headers[name] = draw(
            st.one_of(
                _safe_text,
                st.sampled_from(["application/json", "application/x-ndjson", "text/event-stream"]),
            )
        )
    body = draw(
        st.one_of(
            st.binary(max_size=512),
            _json.map(lambda value: json.dumps(value).encode()),
        )
    )
    usual = "POST" if path.startswith("/publish") else "GET"
    method = draw(st.sampled_from([usual] * 6 + ["GET", "POST", "OPTIONS", "PUT", "HEAD"]))
    return {"method": method, "url": path, "params": params, "headers": headers, "content": body}


@pytest.fixture(scope="module")
def fuzzed(
    module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys
) -> Iterator[GatewayProcess]:
    gateway = module_gateway(
        {
            "GATEWAY_JWT_SECRET": keys.secret,
            "GATEWAY_ANONYMOUS_SUBSCRIBE": "pub.*",
            "GATEWAY_ANONYMOUS_PUBLISH": "pub.*",
        }
    )
    yield gateway
    log = read_log(gateway)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def test_no_request_gets_a_server_error(fuzzed: GatewayProcess, keys: Keys):
    seen: dict[int, int] = {}
    with httpx.Client(base_url=fuzzed.url, timeout=10) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=requests(keys))
        def check(request: dict[str, Any]) -> None:
            try:
                built = http.build_request(**request)
                response = http.send(built, stream=True)
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
                return  # not even sendable over HTTP/1.1 (the client refuses it)
            try:
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (request, response.read())
                if response.status_code >= 400 and request["method"] != "HEAD":
                    assert response.headers["content-type"] == "application/json", request
            finally:
                response.close()  # an open stream (200 on /subscribe) is dropped here

        check()
    print(f"fuzz: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")
    assert fuzzed.proc is not None and fuzzed.proc.poll() is None
    assert http.is_closed
