"""The cluster on loopback: one redis-server, three gateway replicas, nginx round-robin in front.

Replicas are real ``python -m gateway`` processes. A replica is replaced the way Kubernetes does
it: SIGTERM (the gateway drains its streams, each with a short ``retry:``), wait for it to exit,
start the new one on the same port and wait until it is ready. ``kill`` uses SIGKILL instead.
"""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path
from typing import cast

import redis

from publisher.wire import stream_key
from tests.e2e.proxy import Nginx
from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

# Short drain and retry keep a rolling restart to a few seconds; a long history keeps every
# message of a run replayable (the tests compare what clients got with the whole stream).
E2E_ENV = {
    "GATEWAY_DRAIN_WINDOW": "1",
    "GATEWAY_RETRY_MS": "500",
    "GATEWAY_HISTORY_MAX_LEN": "100000",
    "GATEWAY_LOG_LEVEL": "info",
}

# uvicorn re-raises the signal it caught once its graceful shutdown is done, so a replica that
# drained cleanly on SIGTERM exits "killed by SIGTERM" (-15), not 0.
CLEAN_EXITS = frozenset({0, -signal.SIGTERM})


class Cluster:
    def __init__(self, directory: Path, *, replicas: int = 3, env: dict[str, str] | None = None):
        self.dir = directory
        self.env = {**E2E_ENV, **(env or {})}
        self.redis = RedisServer()
        self.ports = [free_port() for _ in range(replicas)]
        self.gateways: list[GatewayProcess] = []
        self.replaced: list[GatewayProcess] = []
        self.proxy = Nginx(directory / "nginx", self.ports)
        self._generation = 0

    @property
    def url(self) -> str:
        """Where clients connect: the proxy."""
        return self.proxy.url

    def start(self) -> Cluster:
        self.redis.start()
        self.gateways = [self._spawn(port) for port in self.ports]
        # Wait for all of them at once: each start is mostly Python import time.
        with concurrent.futures.ThreadPoolExecutor(len(self.gateways)) as pool:
            list(pool.map(lambda gateway: gateway.wait_ready(30.0), self.gateways))
        self.proxy.start()
        return self

    def _spawn(self, port: int) -> GatewayProcess:
        self._generation += 1
        log = self.dir / f"gateway-{port}-{self._generation}.log"
        gateway = GatewayProcess(self.redis.url, port=port, env=self.env, log_path=log)
        return gateway.start(wait_ready=False)

    def replace(self, index: int, *, kill: bool = False) -> int:
        """Stop replica ``index`` (SIGTERM, or SIGKILL) and start its replacement; exit code."""
        old = self.gateways[index]
        if kill:
            old.kill()
            code = old.wait(10)
        else:
            old.terminate()
            code = old.wait(30)
        old.stop()  # closes its log file
        self.replaced.append(old)
        new = self._spawn(old.port)
        self.gateways[index] = new
        new.wait_ready(30.0)
        return code

    def rolling_restart(self) -> list[int]:
        return [self.replace(index) for index in range(len(self.gateways))]

    def history(self, channel: str) -> list[tuple[str, str]]:
        """Every (id, data) in the channel's history, oldest first: what clients are held to."""
        client: redis.Redis = self.redis.client()
        try:
            # redis-py types replies loosely; without decode_responses they are bytes.
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream_key(channel))
            )
        finally:
            client.close()
        return [(entry_id.decode(), fields[b"d"].decode()) for entry_id, fields in entries]

    def stop(self) -> None:
        self.proxy.stop()
        for gateway in self.gateways:
            gateway.stop()
        self.redis.close()

    def logs(self) -> str:
        """Every replica's log plus nginx's error log, for failure messages."""
        parts = [
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.dir.glob("gateway-*.log"))
        ]
        parts.append(f"--- nginx error.log\n{self.proxy.error_log()[-4000:]}")
        return "\n".join(parts)
