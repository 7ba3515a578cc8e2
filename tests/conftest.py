"""Shared fixtures. Integration fixtures start their own redis-server and gateway processes on
ephemeral loopback ports; nothing depends on a Redis the machine may already run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (tests use their own channel names)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may stop, kill, pause or restart."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start real gateway processes; all of them are stopped when the test ends."""
    started: list[GatewayProcess] = []

    def start(redis_url: str | None, **kwargs: object) -> GatewayProcess:
        log_path = tmp_path / f"gateway-{len(started)}.log"
        gateway = GatewayProcess(redis_url, log_path=log_path, **kwargs)  # type: ignore[arg-type]
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(
    redis_server: RedisServer, start_gateway: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return start_gateway(redis_server.url)
