"""CORS against real gateways: exact-match allow-list with credentials, preflights for publish and
subscribe, ``*`` only with auth off (and then without credentials)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.security.conftest import Keys
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.integration

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors(module_gateway: Callable[[dict[str, str]], GatewayProcess], keys: Keys) -> GatewayProcess:
    return module_gateway(
        {
            "GATEWAY_JWT_SECRET": keys.secret,
            "GATEWAY_CORS_ORIGINS": f"{ORIGIN}, http://localhost:3000",
            "GATEWAY_ANONYMOUS_SUBSCRIBE": "public.*",
        }
    )


def preflight(gateway: GatewayProcess, path: str, origin: str, method: str, headers: str):
    return httpx.options(
        gateway.url + path,
        headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": headers,
        },
    )


def test_preflight_for_publish_allows_json_and_authorization(cors: GatewayProcess):
    response = preflight(cors, "/publish/orders", ORIGIN, "POST", "content-type, authorization")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "origin" in response.headers["vary"].lower()


def test_preflight_for_subscribe_allows_last_event_id(cors: GatewayProcess):
    response = preflight(cors, "/subscribe/orders", "http://localhost:3000", "GET", "last-event-id")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "last-event-id" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://app.example.com.evil.com",  # suffix trick
        "http://app.example.com",  # scheme differs
        "https://app.example.com:8443",  # port differs
        "null",
    ],
)
def test_preflight_from_other_origins_is_refused(cors: GatewayProcess, origin: str):
    response = preflight(cors, "/publish/orders", origin, "POST", "content-type")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_preflight_for_unlisted_header_is_refused(cors: GatewayProcess):
    response = preflight(cors, "/publish/orders", ORIGIN, "POST", "x-admin-override")
    assert response.status_code == 400


def test_actual_requests_carry_cors_headers_even_when_refused(cors: GatewayProcess):
    response = httpx.post(cors.url + "/publish/orders", json={}, headers={"origin": ORIGIN})
    assert response.status_code == 401  # the browser can read why
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    other = httpx.post(cors.url + "/publish/orders", json={}, headers={"origin": "https://x.io"})
    assert "access-control-allow-origin" not in other.headers


def test_wildcard_without_auth_serves_star_without_credentials(open_gateway: GatewayProcess):
    response = preflight(open_gateway, "/publish/x", "https://anywhere.io", "POST", "content-type")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
