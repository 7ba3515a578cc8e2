"""Security-suite fixtures: key material written to files, a token minter that remembers every
token it made (so tests can prove none of them reached a log), and module-scoped gateways.

Gateways are module-scoped on purpose: each start costs a second or so, and these tests only read
from them (every test uses its own channel names).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

SECRET = secrets.token_urlsafe(48)


@dataclass
class Keys:
    secret: str
    rsa_private: rsa.RSAPrivateKey
    ec_private: ec.EllipticCurvePrivateKey
    pem_file: Path  # the RSA public key
    jwks_file: Path  # the EC public key (kid "ec-1") and a second, unrelated RSA key ("rsa-2")
    secret_file: Path
    minted: list[str] = field(default_factory=list)

    def mint(
        self,
        subscribe: list[str] | None = None,
        publish: list[str] | None = None,
        *,
        ttl: float = 300,
        alg: str = "HS256",
        extra: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        key: Any = None,
    ) -> str:
        claims: dict[str, Any] = {
            "sse": {"subscribe": subscribe or [], "publish": publish or []},
            "exp": int(time.time() + ttl),
            "sub": "tester",
            **(extra or {}),
        }
        signing_key = key
        if signing_key is None:
            signing_key = {"HS256": self.secret, "RS256": self.rsa_private}.get(
                alg, self.ec_private
            )
        token = jwt.encode(claims, signing_key, algorithm=alg, headers=headers)
        self.minted.append(token)
        return token


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_private = ec.generate_private_key(ec.SECP256R1())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_file = folder / "public.pem"
    pem_file.write_bytes(
        rsa_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_private.public_key()))
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_rsa.public_key()))
    jwks_file = folder / "jwks.json"
    jwks_file.write_text(
        json.dumps({"keys": [{**ec_jwk, "kid": "ec-1"}, {**rsa_jwk, "kid": "rsa-2"}]})
    )
    secret_file = folder / "secret"
    secret_file.write_text(SECRET + "\n")  # as a Kubernetes Secret mount often has it
    return Keys(SECRET, rsa_private, ec_private, pem_file, jwks_file, secret_file)


@contextmanager
def running_gateway(
    redis_url: str | None, log_path: Path, env: dict[str, str]
) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(redis_url, log_path=log_path, env=env)
    try:
        yield gateway.start()
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def module_gateway(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[dict[str, str]], GatewayProcess]]:
    """Start gateways (on the session's redis) that live until the module ends."""
    stack: list[Any] = []

    def start(env: dict[str, str]) -> GatewayProcess:
        log_path = tmp_path_factory.mktemp("gw") / "gateway.log"
        context = running_gateway(redis_server.url, log_path, env)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def read_log(gateway: GatewayProcess) -> str:
    assert gateway.log_path is not None
    return gateway.log_path.read_text(errors="replace")


# Limits small enough to reach quickly; auth off (the dev default), so hostile input meets the
# parsers rather than the token check, and CORS "*" (allowed only with auth off).
OPEN_ENV = {
    "GATEWAY_MAX_BODY_BYTES": "65536",
    "GATEWAY_BODY_TIMEOUT": "1",
    "GATEWAY_REPLAY_MAX": "50",
    "GATEWAY_MAX_BATCH_MESSAGES": "100",
    "GATEWAY_CORS_ORIGINS": "*",
}


@pytest.fixture(scope="session")
def open_gateway(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Auth off, small limits. On teardown: it must never have answered a 500 or logged a crash."""
    log_path = tmp_path_factory.mktemp("open") / "gateway.log"
    with running_gateway(redis_server.url, log_path, OPEN_ENV) as gateway:
        yield gateway
        assert gateway.proc is not None and gateway.proc.poll() is None, "the gateway died"
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
