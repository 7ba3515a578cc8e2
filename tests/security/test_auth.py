"""JWT auth against real gateway processes: every token source, every failure mode, rights per
channel, expiry of open streams, and resume re-checking rights."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from tests.security.conftest import Keys, read_log
from tests.support.gateway_process import ROOT, GatewayProcess
from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hs(module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys) -> GatewayProcess:
    """HS256, secret from a file; anonymous subscribe on public.*; debug logs (checked for
    secrets at the end of the module)."""
    return module_gateway(
        {
            "GATEWAY_JWT_SECRET_FILE": str(keys.secret_file),
            "GATEWAY_ANONYMOUS_SUBSCRIBE": "public.*",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_RETRY_MS": "9999",  # the preamble; the expiry farewell sends a short one
        }
    )


@pytest.fixture(scope="module")
def rs(module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys) -> GatewayProcess:
    return module_gateway({"GATEWAY_JWT_PUBLIC_KEY_FILE": str(keys.pem_file)})


@pytest.fixture(scope="module")
def strict(
    module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys
) -> GatewayProcess:
    """No query tokens; anonymous publish (and nothing else) on inbox.*"""
    return module_gateway(
        {
            "GATEWAY_JWT_SECRET": keys.secret,
            "GATEWAY_AUTH_QUERY_TOKENS": "false",
            "GATEWAY_ANONYMOUS_PUBLISH": "inbox.*",
        }
    )


@pytest.fixture(scope="module")
def jwks(module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys) -> GatewayProcess:
    return module_gateway(
        {
            "GATEWAY_JWT_JWKS_FILE": str(keys.jwks_file),
            "GATEWAY_JWT_AUDIENCE": "sse-gateway",
            "GATEWAY_JWT_ISSUER": "https://auth.test",
        }
    )


async def post(gateway: GatewayProcess, channel: str, token: str | None = None, **kw: object):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{gateway.url}/publish/{channel}", json={"n": 1}, headers=headers, **kw
        )


async def get(gateway: GatewayProcess, path: str, **kw: object) -> httpx.Response:
    """For requests that are refused (a refused subscribe answers at once, with JSON)."""
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(gateway.url + path, **kw)


async def first_frame(url: str, **kw: object):
    async with sse_connect(url, **kw) as stream:
        assert stream.response.status_code == 200, await stream.response.aread()
        return await stream.next_frame()


# -- token sources -------------------------------------------------------------------------


async def test_bearer_header_grants_publish_and_subscribe(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.hdr"], ["auth.hdr"])
    headers = {"authorization": f"Bearer {token}"}
    async with sse_connect(hs.url + "/subscribe/auth.hdr", headers=headers) as stream:
        assert stream.response.status_code == 200
        await stream.next_frame()
        response = await post(hs, "auth.hdr", token)
        assert response.status_code == 202
        event = await stream.next_event()
        assert event is not None and event.id == response.json()["id"]


async def test_cookie_grants_subscribe(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.cookie"])
    frame = await first_frame(
        hs.url + "/subscribe/auth.cookie", headers={"cookie": f"sse_token={token}"}
    )
    assert frame is not None and frame.id is not None


async def test_query_token_grants_subscribe(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.query"])
    frame = await first_frame(f"{hs.url}/subscribe?channel=auth.query&access_token={token}")
    assert frame is not None and frame.id is not None


async def test_header_wins_over_cookie_and_query(hs: GatewayProcess, keys: Keys):
    good = keys.mint(["auth.order"])
    bad = keys.mint(["auth.order"], key="x" * 40)  # signed with another secret
    response = await get(
        hs,
        f"/subscribe/auth.order?access_token={good}",
        headers={"authorization": f"Bearer {bad}", "cookie": f"sse_token={good}"},
    )
    assert response.status_code == 401


async def test_query_tokens_can_be_turned_off(strict: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.noquery"])
    response = await get(strict, f"/subscribe/auth.noquery?access_token={token}")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_required"


# -- failure modes -------------------------------------------------------------------------


def assert_401(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == code
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda k: "not-a-jwt", id="malformed"),
        pytest.param(lambda k: "a.b.c", id="garbage-segments"),
        pytest.param(lambda k: k.mint(["auth.fail"], key="y" * 48), id="wrong-secret"),
        pytest.param(lambda k: k.mint(["auth.fail"])[:-4] + "AAAA", id="tampered-signature"),
        pytest.param(
            lambda k: jwt.encode(
                {"sse": {"subscribe": ["*"]}, "exp": int(time.time()) + 60}, None, algorithm="none"
            ),
            id="alg-none",
        ),
        pytest.param(lambda k: k.mint(["auth.fail"], alg="RS256"), id="wrong-algorithm"),
        pytest.param(
            lambda k: jwt.encode({"sse": {"subscribe": ["*"]}}, k.secret, algorithm="HS256"),
            id="no-exp",
        ),
        pytest.param(
            lambda k: jwt.encode(
                {"sse": {"subscribe": "auth.fail"}, "exp": int(time.time()) + 60},
                k.secret,
                algorithm="HS256",
            ),
            id="claims-not-a-list",
        ),
        pytest.param(
            lambda k: jwt.encode(
                {"sse": ["auth.fail"], "exp": int(time.time()) + 60}, k.secret, algorithm="HS256"
            ),
            id="claim-not-an-object",
        ),
        pytest.param(lambda k: "x" * 9000, id="oversized"),
    ],
)
async def test_bad_tokens_get_401(hs: GatewayProcess, keys: Keys, make):
    token = make(keys)
    assert_401(
        await get(hs, "/subscribe/auth.fail", headers={"authorization": f"Bearer {token}"}),
        "invalid_token",
    )
    assert_401(await post(hs, "auth.fail", token), "invalid_token")


async def test_expired_token_gets_401(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.exp"], ttl=-5)
    assert_401(await get(hs, f"/subscribe/auth.exp?access_token={token}"), "token_expired")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    x", "token"])
async def test_wrong_authorization_scheme_gets_401(hs: GatewayProcess, header: str):
    response = await get(hs, "/subscribe/public.x", headers={"authorization": header})
    assert_401(response, "invalid_token")


async def test_insufficient_rights_get_403(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.a.*"], ["auth.a.mine"])
    headers = {"authorization": f"Bearer {token}"}
    response = await get(hs, "/subscribe/auth.b.1", headers=headers)
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "this token may not subscribe on 'auth.b.1'",
    }
    # one forbidden channel refuses the whole multi-channel stream
    response = await get(hs, "/subscribe?channel=auth.a.1&channel=auth.b.1", headers=headers)
    assert response.status_code == 403
    assert (await post(hs, "auth.a.other", token)).status_code == 403
    assert (await post(hs, "auth.a.mine", token)).status_code == 202


async def test_anonymous_subscribe_only_where_configured(hs: GatewayProcess):
    frame = await first_frame(hs.url + "/subscribe/public.news")
    assert frame is not None and frame.id is not None
    assert_401(await get(hs, "/subscribe/private.news"), "authentication_required")
    # anonymous publish is not configured, even on the public channels
    assert_401(await post(hs, "public.news"), "authentication_required")


async def test_anonymous_publish_when_configured(strict: GatewayProcess):
    assert (await post(strict, "inbox.1")).status_code == 202
    assert (await post(strict, "outbox.1")).status_code == 401
    assert "ANONYMOUS PUBLISH IS ON" in read_log(strict)


def test_weak_secret_refuses_to_start_without_echoing_it(tmp_path: Path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("changeme-changeme-changeme-changeme-0123456789\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--port", "1"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "GATEWAY_JWT_SECRET_FILE": str(secret_file)},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"JWT secret looks like a placeholder" in result.stderr
    assert b"changeme" not in result.stderr + result.stdout


def test_no_auth_is_announced_loudly(open_gateway: GatewayProcess):
    assert "AUTH IS OFF" in read_log(open_gateway)


async def test_rs256_public_key_file(rs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.rs"], ["auth.rs"], alg="RS256")
    assert (await post(rs, "auth.rs", token)).status_code == 202
    # an HS256 token signed with the public key as secret (algorithm confusion) is refused
    forged = forge_hs256(
        {"sse": {"publish": ["*"]}, "exp": int(time.time()) + 60}, keys.pem_file.read_bytes()
    )
    assert_401(await post(rs, "auth.rs", forged), "invalid_token")


async def test_jwks_file_picks_key_by_kid_and_checks_audience_and_issuer(
    jwks: GatewayProcess, keys: Keys
):
    good = {"aud": "sse-gateway", "iss": "https://auth.test"}
    token = keys.mint(
        ["auth.jwks"], ["auth.jwks"], alg="ES256", extra=good, headers={"kid": "ec-1"}
    )
    assert (await post(jwks, "auth.jwks", token)).status_code == 202
    wrong_kid = keys.mint(["auth.jwks"], alg="ES256", extra=good, headers={"kid": "rsa-2"})
    unknown_kid = keys.mint(["auth.jwks"], alg="ES256", extra=good, headers={"kid": "nope"})
    wrong_aud = keys.mint(
        ["auth.jwks"], alg="ES256", extra={**good, "aud": "other"}, headers={"kid": "ec-1"}
    )
    wrong_iss = keys.mint(
        ["auth.jwks"], alg="ES256", extra={**good, "iss": "https://evil"}, headers={"kid": "ec-1"}
    )
    for token in (wrong_kid, unknown_kid, wrong_aud, wrong_iss):
        assert_401(await post(jwks, "auth.jwks", token), "invalid_token")


def forge_hs256(claims: dict[str, object], secret: bytes) -> str:
    """Sign by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + signature).decode()


# -- open streams and resume ---------------------------------------------------------------


async def test_stream_is_closed_at_token_expiry_with_a_retry_hint(hs: GatewayProcess, keys: Keys):
    token = keys.mint(["auth.expiring"], ttl=2)
    async with sse_connect(hs.url + f"/subscribe/auth.expiring?access_token={token}") as stream:
        assert stream.response.status_code == 200
        assert await stream.next_frame() is not None  # the preamble
        assert await stream.next_frame(timeout=10) is None  # closed by the server
        assert stream.parser.retry is not None and 250 <= stream.parser.retry <= 2000
        assert "closed (expired)" in stream.parser.comments


async def test_resume_replays_only_channels_the_current_token_may_read(
    hs: GatewayProcess, keys: Keys
):
    both = keys.mint(["res.open", "res.secret"], ["res.open", "res.secret"])
    only_open = keys.mint(["res.open"])
    url = hs.url + "/subscribe?channel=res.open&channel=res.secret"
    async with sse_connect(url, headers={"authorization": f"Bearer {both}"}) as stream:
        await stream.next_frame()
        start = stream.last_event_id
    ids: dict[str, list[str]] = {"res.open": [], "res.secret": []}
    for channel in ("res.open", "res.secret", "res.open", "res.secret"):
        response = await post(hs, channel, both, params={"event": "n"})
        ids[channel].append(response.json()["id"])
    # the old vector id names both channels; the new token may only read one of them
    refused = await get(
        hs,
        "/subscribe?channel=res.open&channel=res.secret",
        headers={"authorization": f"Bearer {only_open}", "last-event-id": start},
    )
    assert refused.status_code == 403
    refused = await get(
        hs,
        "/subscribe/res.secret",
        headers={"authorization": f"Bearer {only_open}", "last-event-id": start},
    )
    assert refused.status_code == 403
    headers = {"authorization": f"Bearer {only_open}"}
    async with sse_connect(
        hs.url + "/subscribe?channel=res.open", headers=headers, last_event_id=start
    ) as stream:
        assert stream.response.status_code == 200
        await stream.next_frame()  # preamble
        replayed = await stream.collect(2, timeout=10)
        assert [e.id for e in replayed] == ids["res.open"]
        # nothing else (no secret entries) follows: the next frame is a live publish
        response = await post(hs, "res.open", both, params={"event": "live"})
        event = await stream.next_event()
        assert event is not None and event.event == "live" and response.status_code == 202


async def test_no_secret_or_token_reaches_the_logs(hs: GatewayProcess, keys: Keys):
    # runs last in this module: every token minted above has been sent to `hs` by now
    await asyncio.sleep(0.2)
    log = read_log(hs)
    assert "auth: JWT HS256" in log  # the start-up line names the algorithm, not the key
    assert keys.secret not in log
    leaked = [token for token in keys.minted if token in log]
    assert leaked == []
    signatures = [token.rsplit(".", 1)[-1] for token in keys.minted if token.count(".") == 2]
    assert not [sig for sig in signatures if len(sig) > 10 and sig in log]
