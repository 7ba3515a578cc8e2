"""One gateway process per module, shared by the tests that can share it (starting a gateway
costs seconds on a busy 2-core machine). Tests that stop or restart it leave it running again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

# Quick reconnects and drains keep restart tests short; keepalives show up within a test.
FAST = {
    "GATEWAY_RETRY_MS": "100",
    "GATEWAY_DRAIN_WINDOW": "0.5",
    "GATEWAY_GRACEFUL_TIMEOUT": "3",
    "GATEWAY_KEEPALIVE_INTERVAL": "0.5",
}


@pytest.fixture(scope="module")
def _module_gateway(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    gateway = GatewayProcess(redis_server.url, env=FAST, log_path=log_path)
    try:
        yield gateway.start()
    finally:
        gateway.stop()


@pytest.fixture
def shared_gateway(_module_gateway: GatewayProcess) -> GatewayProcess:
    """The module's gateway, running (restarted on the same port if a test left it down)."""
    if _module_gateway.proc is None or _module_gateway.proc.poll() is not None:
        _module_gateway.stop()
        _module_gateway.start()
    return _module_gateway
