"""Start-up of a real gateway process: the stream cap from the descriptor limit, and refusals.

A refused configuration ends the process with exit code 2 and one line on stderr naming the
setting; nothing is bound, nothing else is printed, and a rejected value is never echoed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.settings import FD_RESERVE
from tests.support.gateway_process import ROOT, GatewayProcess

pytestmark = pytest.mark.integration


def _nofile(soft: int) -> Callable[[], None]:
    def lower() -> None:  # in the child, before exec: the gateway starts with this limit
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return lower


async def _open_streams(url: str, n: int) -> tuple[list[bytes], list[asyncio.StreamWriter]]:
    """Open ``n`` streams at once; the status line of each, and the connections (kept open)."""
    host, port = url.removeprefix("http://").split(":")

    async def one(i: int) -> tuple[bytes, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /subscribe/cap HTTP/1.1\r\nHost: gw\r\n\r\n")
        return (await reader.readline()).strip(), writer

    got = await asyncio.gather(*(one(i) for i in range(n)))
    return [status for status, _ in got], [writer for _, writer in got]


async def _statuses_over_the_cap(gateway: GatewayProcess, cap: int) -> tuple[int, int]:
    """(streams answered 200, streams answered 503) when ``cap`` + 3 are opened."""
    statuses, writers = await _open_streams(gateway.url, cap)
    try:
        more, extra = await _open_streams(gateway.url, 3)
        writers += extra
        everything = statuses + more
        ok = sum(s.startswith(b"HTTP/1.1 200") for s in everything)
        full = sum(s.startswith(b"HTTP/1.1 503") for s in everything)
        return ok, full
    finally:
        for writer in writers:
            writer.close()


@pytest.mark.timeout(60)
async def test_stream_cap_defaults_from_the_descriptor_limit_less_the_reserve(start_gateway):
    soft = 2 * FD_RESERVE + 40
    gateway = start_gateway(None, preexec_fn=_nofile(soft))
    assert await _statuses_over_the_cap(gateway, soft - FD_RESERVE) == (soft - FD_RESERVE, 3)


@pytest.mark.timeout(60)
async def test_an_explicit_stream_cap_wins_over_the_descriptor_limit(start_gateway):
    gateway = start_gateway(
        None, preexec_fn=_nofile(2 * FD_RESERVE + 40), env={"GATEWAY_MAX_CONNECTIONS": "5"}
    )
    assert await _statuses_over_the_cap(gateway, 5) == (5, 3)


@pytest.mark.timeout(60)
async def test_a_low_descriptor_limit_keeps_half_for_everything_else(start_gateway):
    gateway = start_gateway(None, preexec_fn=_nofile(100))
    assert await _statuses_over_the_cap(gateway, 50) == (50, 3)


def _refusal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", "1", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("env", "says", "secret"),
    [
        ({"GATEWAY_WORKERS": "two"}, "GATEWAY_WORKERS: Input should be a valid integer", ""),
        ({"GATEWAY_MAX_CONNECTIONS": "-5"}, "GATEWAY_MAX_CONNECTIONS: Input should be greater", ""),
        ({"GATEWAY_REDIS_URL": "foo://x"}, "GATEWAY_REDIS_URL: unsupported Redis URL scheme", ""),
        (
            {"GATEWAY_REDIS_URL": "redis://:Sw0rdf1shSw0rdf1sh@127.0.0.1:six/0"},
            "GATEWAY_REDIS_URL: Port could not be cast to integer",
            "Sw0rdf1sh",
        ),
        ({"GATEWAY_JWT_SECRET": "changeme"}, "GATEWAY_JWT_SECRET: the JWT secret is 8 bytes", ""),
        (
            {"GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": "changeme"},
            "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY: the JWT secret is 8 bytes",
            "",
        ),
        (
            {"GATEWAY_DRAIN_WINDOW": "30"},
            "GATEWAY_DRAIN_WINDOW must be shorter than GATEWAY_GRACEFUL_TIMEOUT",
            "",
        ),
        ({"GATEWAY_JWT_ALGORITHMS": "HS256"}, "GATEWAY_JWT_ALGORITHMS is set but no JWT key", ""),
    ],
)
def test_a_refused_setting_is_one_line_naming_it_and_exit_code_2(env, says, secret):
    result = _refusal(env)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr  # one line, not pydantic's report
    assert result.stderr.startswith(f"sse-gateway: refusing to start: {says}"), result.stderr
    assert "pydantic" not in result.stderr and "Traceback" not in result.stderr
    if secret:
        assert secret not in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unusable_key_file_is_refused_before_anything_is_bound(tmp_path: Path, workers: str):
    secret_file = tmp_path / "secret"
    secret_file.write_text("placeholder-" * 5 + "\n")
    env = {"GATEWAY_JWT_SECRET_FILE": str(secret_file), "GATEWAY_REDIS_URL": "redis://127.0.0.1:1"}
    result = _refusal(env, "--workers", workers)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr == (
        "sse-gateway: refusing to start: GATEWAY_JWT_SECRET_FILE: the JWT secret looks like a "
        "placeholder; use a random secret\n"
    )
    missing = _refusal({"GATEWAY_JWT_SECRET_FILE": str(tmp_path / "none")}, "--workers", "1")
    assert (missing.returncode, missing.stderr.count("\n")) == (2, 1)
    assert "GATEWAY_JWT_SECRET_FILE: cannot read" in missing.stderr
