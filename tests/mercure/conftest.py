"""Mercure hub fixtures: keys, token makers and gateways with the hub configured."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

PUBLISHER_KEY = "pub-Kq8vN3xR7tZ2mW9pL4sJ6hF1dG5bC0yE"
SUBSCRIBER_KEY = "sub-Xw3eR8tY1uI6oP9aS2dF5gH7jK4lZ0cV"
AUDIENCE = "https://hub.test/.well-known/mercure"
ISSUER = "https://app.test"
DETAIL = "https://mercure.rocks/authorization-detail"


def legacy_token(key: str, exp: float | None = None, **rights: Any) -> str:
    """A 0.x token: {"mercure": {"publish": [...], "subscribe": [...], "payload": ...}}."""
    claims: dict[str, Any] = {"mercure": rights}
    if exp is not None:
        claims["exp"] = int(exp)
    return jwt.encode(claims, key, algorithm="HS256")


def access_token(key: str, details: list[dict[str, Any]], **claims: Any) -> str:
    """A draft-08 RFC 9068 access token with authorization_details."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s1", "client_id": ISSUER, "iat": now}
    body |= {"exp": now + 600, "jti": f"j{now}", "authorization_details": details} | claims
    return jwt.encode(body, key, algorithm="HS256", headers={"typ": "at+jwt"})


def detail(actions: list[str], *topics: tuple[str, str], **extra: Any) -> dict[str, Any]:
    matchers = [{"match": match, "match_type": kind} for match, kind in topics]
    return {"type": DETAIL, "actions": actions, "topics": matchers, **extra}


PUBLISH_ALL = legacy_token(PUBLISHER_KEY, publish=["*"])


def hub_env(**extra: str) -> dict[str, str]:
    env = {
        "GATEWAY_MERCURE_PUBLISHER_JWT_KEY": PUBLISHER_KEY,
        "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": SUBSCRIBER_KEY,
        "GATEWAY_MERCURE_AUDIENCE": AUDIENCE,
        "GATEWAY_MERCURE_ISSUER": ISSUER,
        "GATEWAY_KEEPALIVE_INTERVAL": "1",
    }
    return env | extra


@pytest.fixture
def start_hub(
    start_gateway: Callable[..., GatewayProcess],
) -> Callable[..., GatewayProcess]:
    def start(redis_url: str | None, **extra: str) -> GatewayProcess:
        return start_gateway(redis_url, env=hub_env(**extra))

    return start


@pytest.fixture(scope="session")
def replicas(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    """Two hubs on the session's redis-server, anonymous subscribers allowed, shared by the tests:
    each test uses its own topics (they all share the one Mercure log, which keeps 20,000)."""
    logs = tmp_path_factory.mktemp("mercure")
    env = hub_env(GATEWAY_MERCURE_ANONYMOUS="true", GATEWAY_HISTORY_MAX_LEN="20000")
    started = [
        GatewayProcess(redis_server.url, env=env, log_path=logs / f"hub-{n}.log").start()
        for n in range(2)
    ]
    yield started
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def hub(replicas: list[GatewayProcess]) -> GatewayProcess:
    return replicas[0]
