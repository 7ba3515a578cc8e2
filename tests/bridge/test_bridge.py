"""The real ``sse-bridge`` command between a real PostgreSQL server, a real redis-server and a real
gateway: NOTIFY payloads reach subscribers with ids and history, across a database restart; bad
payloads are counted and logged, never published."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from publisher import Message, Subscriber
from tests.bridge.postgres import PostgresServer
from tests.support.gateway_process import ROOT, GatewayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


class BridgeProcess:
    def __init__(self, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "publisher.bridge", *args]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert self.proc.poll() is None, f"sse-bridge exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} x{count} in:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    started: list[BridgeProcess] = []

    def start(*args: str) -> BridgeProcess:
        process = BridgeProcess(tmp_path / f"bridge-{len(started)}.log", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@contextmanager
def _subscribed(gateway: GatewayProcess, channel: str) -> Iterator[Subscriber]:
    # From 0-0: everything the channel's history ever held, so no race with the bridge.
    with Subscriber(gateway.url, channel, last_event_id="0-0", read_timeout=30) as sub:
        yield sub


def test_notify_payloads_reach_subscribers_across_a_database_restart(
    postgres: PostgresServer,
    redis_server: RedisServer,
    start_gateway: Callable[..., GatewayProcess],
    bridge: Callable[..., BridgeProcess],
) -> None:
    gateway = start_gateway(redis_server.url)
    process = bridge(
        *("--dsn", postgres.dsn, "--redis-url", redis_server.url),
        *("--map", "orders_changed=br-orders", "--map", "Stock Moves=br-stock"),
        *("--max-payload", "200", "--retry-max", "0.5", "--health-interval", "1"),
    )
    process.wait_for("listening on")
    with _subscribed(gateway, "br-orders") as sub:
        postgres.notify("orders_changed", '{"n": 1}')
        postgres.notify("orders_changed", "not json at all")
        postgres.notify("orders_changed", '{"half": ')  # a truncated document is not JSON either
        big = '{"big": "' + "x" * 300 + '"}'
        postgres.notify("orders_changed", big)
        postgres.notify("Stock Moves", '{"sku": "A1"}')  # a quoted identifier, mapped elsewhere
        postgres.notify("orders_changed", '{"n": 2}')
        # Received before the restart: a NOTIFY still queued for a backend that a shutdown
        # terminates is lost with it (LISTEN/NOTIFY has no history), so the test waits.
        before = [next(sub), next(sub)]

        postgres.stop()
        process.wait_for("NOTIFYs sent until the bridge listens again are LOST")
        postgres.start()
        process.wait_for("listening on", count=2)
        postgres.notify("orders_changed", '{"n": 3}')
        items = [*before, next(sub)]
    assert all(isinstance(item, Message) for item in items)
    assert [item.data for item in items if isinstance(item, Message)] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    with _subscribed(gateway, "br-stock") as sub:
        stock = next(sub)
    assert isinstance(stock, Message) and stock.data == {"sku": "A1"}
    # Nothing else was stored: the refused payloads never became messages.
    assert redis_server.client().xlen("sse:stream:{br-orders}") == 3

    assert process.stop() == 0
    log = process.log()
    assert log.count("dropped NOTIFY on orders_changed: not JSON") == 2
    assert f"dropped NOTIFY on orders_changed: {len(big)} bytes > max 200" in log
    assert "bridge stopped: received=7 published=4 invalid=2 too_large=1" in log


def test_notifies_wait_for_redis_while_the_database_connection_holds(
    postgres: PostgresServer,
    own_redis: RedisServer,
    bridge: Callable[..., BridgeProcess],
) -> None:
    process = bridge(
        *("--dsn", postgres.dsn, "--redis-url", own_redis.url, "--map", "waiting=br-wait"),
        *("--retry-max", "0.5"),
    )
    process.wait_for("listening on")
    own_redis.stop()
    for n in range(5):
        postgres.notify("waiting", f'{{"n": {n}}}')
    process.wait_for("publish to br-wait failed")
    own_redis.start()  # empty again: the bridge's retried publishes are all it will hold
    client = own_redis.client()
    deadline = time.monotonic() + 30
    while client.xlen("sse:stream:{br-wait}") < 5:
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.05)
    entries = client.xrange("sse:stream:{br-wait}")
    assert [entry[b"d"] for _, entry in entries] == [b'{"n":%d}' % n for n in range(5)]


def test_command_line_is_checked() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "publisher.bridge", "--dsn", "postgresql://x", "--map", "nochannel"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--map wants pg_channel=gateway_channel" in result.stderr
