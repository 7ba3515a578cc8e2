"""Secure by default, as an operator meets it: the real CLI refuses a gateway on Redis without a
key, in one line and with exit code 2; GATEWAY_AUTH=off or a key lets it start."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.support.gateway_process import ROOT, GatewayProcess
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--port", str(free_port()), *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "GATEWAY_AUTH=off"),
        ({"GATEWAY_AUTH": "off", "GATEWAY_JWT_SECRET": secrets.token_urlsafe(48)}, "contradicts"),
    ],
)
def test_a_gateway_on_redis_without_a_key_refuses_to_start(env: dict[str, str], says: str):
    # The Redis URL need not answer: the refusal comes before anything connects.
    result = run_cli(env, "--redis-url", "redis://127.0.0.1:1/0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "GATEWAY_" in lines[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "env", [{"GATEWAY_AUTH": "off"}, {"GATEWAY_JWT_SECRET": secrets.token_urlsafe(48)}]
)
def test_an_explicit_off_or_a_key_starts_it(redis_server: RedisServer, env: dict[str, str]):
    gateway = GatewayProcess(redis_server.url, env=env)
    try:
        gateway.start()  # waits for /readyz
    finally:
        gateway.stop()
