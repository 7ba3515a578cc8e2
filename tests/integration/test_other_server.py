"""The app is a plain ASGI app: the publish, subscribe, resume and disconnect tests again, against
``gateway.asgi:app`` served by hypercorn (a real process, real HTTP), without the gateway's own
protocol. Every test of those modules runs here with the two fixtures below in place of the
ones that start ``python -m gateway``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import test_disconnect, test_publish_subscribe, test_resume
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

for _module in (test_publish_subscribe, test_resume, test_disconnect):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and callable(_test):
            globals()[_name] = _test


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A Redis of its own: these tests reuse the other modules' channel names."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def start_gateway(
    start_gateway: Callable[..., GatewayProcess],
) -> Callable[..., GatewayProcess]:
    def start(redis_url: str | None, **kwargs: Any) -> GatewayProcess:
        return start_gateway(redis_url, server="hypercorn", **kwargs)

    return start


@pytest.fixture
def gateway(redis_server: RedisServer, start_gateway: Callable[..., GatewayProcess]) -> Any:
    return start_gateway(redis_server.url)
