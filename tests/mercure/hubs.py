"""Two real gateway replicas serving the Mercure hub on one redis-server, for the client tests
(browser, npm libraries). Keys, tokens and the publish helper are the hub tests' own
(``conftest.py``, ``support.py``)."""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CHROMIUM, E2E_DIR
from tests.e2e.proxy import INSTALL_HINT
from tests.mercure.conftest import (
    PUBLISH_ALL,
    SUBSCRIBER_KEY,
    access_token,
    detail,
    hub_env,
    legacy_token,
)
from tests.mercure.support import HUB, publish
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

__all__ = [
    "HUB",
    "PUBLISH_ALL",
    "Replicas",
    "publish",
    "require_node_tools",
    "subscriber_access_token",
    "subscriber_token",
]


def subscriber_token(subscribe: list[str], payload: Any = None) -> str:
    """0.x: ``mercure.subscribe`` selectors, and the ``payload`` subscription events carry."""
    extra = {} if payload is None else {"payload": payload}
    return legacy_token(SUBSCRIBER_KEY, subscribe=subscribe, **extra)


def subscriber_access_token(urlpattern: str) -> str:
    """draft-08: an RFC 9068 access token allowing subscribe on topics matching a URL pattern."""
    return access_token(SUBSCRIBER_KEY, [detail(["subscribe"], (urlpattern, "urlpattern"))])


def require_node_tools() -> None:
    """Never skip: a machine without the tools fails here, with the command that fixes it."""
    missing = [tool for tool in ("node", "redis-server") if shutil.which(tool) is None]
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    for package in ("playwright-core", "mercure", "@microsoft/fetch-event-source"):
        if not (E2E_DIR / "node_modules" / package).is_dir():
            missing.append(f"tests/e2e/node_modules/{package} (npm ci)")
    if missing:
        pytest.fail(f"Mercure client tools missing: {', '.join(missing)}; {INSTALL_HINT}")


class Replicas:
    """Replica ``i`` can be killed (SIGKILL) and restarted on the same port."""

    def __init__(self, directory: Path, *, anonymous: bool, cors: str | None = None) -> None:
        self.dir = directory
        extra = {"GATEWAY_MERCURE_ANONYMOUS": "true" if anonymous else "false"}
        extra["GATEWAY_RETRY_MS"] = "300"  # browsers come back quickly after a replica dies
        extra["GATEWAY_MERCURE_SUBSCRIPTIONS"] = "true"
        if cors:
            extra["GATEWAY_CORS_ORIGINS"] = cors
        self.env = hub_env(**extra)
        self.redis = RedisServer()
        self.gateways: list[GatewayProcess] = []
        self._spawned = 0

    @property
    def urls(self) -> list[str]:
        return [gateway.url for gateway in self.gateways]

    def start(self) -> Replicas:
        self.redis.start()
        self.gateways = [self._spawn(None), self._spawn(None)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda gateway: gateway.wait_ready(30.0), self.gateways))
        return self

    def _spawn(self, port: int | None) -> GatewayProcess:
        self._spawned += 1
        log = self.dir / f"gateway-{self._spawned}.log"
        gateway = GatewayProcess(self.redis.url, port=port, env=self.env, log_path=log)
        return gateway.start(wait_ready=False)

    def kill(self, index: int) -> None:
        self.gateways[index].kill()
        self.gateways[index].stop()  # closes its log

    def restart(self, index: int) -> None:
        self.gateways[index] = self._spawn(self.gateways[index].port)
        self.gateways[index].wait_ready(30.0)

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.redis.close()
