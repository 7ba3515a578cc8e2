"""A real gateway process (``python -m gateway``) on an ephemeral loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY_SOURCES = (
    "GATEWAY_JWT_SECRET",
    "GATEWAY_JWT_SECRET_FILE",
    "GATEWAY_JWT_PUBLIC_KEY_FILE",
    "GATEWAY_JWT_JWKS_FILE",
)


class GatewayProcess:
    def __init__(
        self,
        redis_url: str | None,
        *,
        port: int | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
        server: str = "gateway",
    ) -> None:
        self.redis_url = redis_url
        self.port = port or free_port()
        self.workers = workers
        self.env = env or {}
        self.log_path = log_path
        self.preexec_fn = preexec_fn  # runs in the child before exec: e.g. a lower RLIMIT_NOFILE
        self.server = server  # "gateway" (our CLI), or "hypercorn" serving gateway.asgi:app
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> GatewayProcess:
        inherited = ("GATEWAY_", "PROMETHEUS_MULTIPROC_DIR")  # each gateway sets up its own
        env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
        env.update({"GATEWAY_UNSUBSCRIBE_DELAY": "0.2", "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        if not any(name in env for name in KEY_SOURCES):
            # A test that configures no key means the open gateway it always had (a gateway on a
            # Redis URL otherwise refuses to start); a test of that refusal sets GATEWAY_AUTH.
            env.setdefault("GATEWAY_AUTH", "off")
        if self.server == "hypercorn":
            cmd = [sys.executable, "-m", "hypercorn", "gateway.asgi:app"]
            cmd += ["--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "2"]
            if self.redis_url:
                env["GATEWAY_REDIS_URL"] = self.redis_url
        else:
            cmd = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(self.port)]
            cmd += ["--workers", str(self.workers)]
            cmd += ["--log-level", env.get("GATEWAY_LOG_LEVEL", "info")]
            if self.redis_url:
                cmd += ["--redis-url", self.redis_url]
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn,  # a setrlimit only: safe between fork and exec
        )
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"gateway on {self.url} not ready after {timeout}s")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@contextmanager
def replicas(
    redis_url: str, logs: Path, env: dict[str, str], count: int = 2
) -> Iterator[list[GatewayProcess]]:
    """``count`` gateway replicas on one Redis, logging to ``logs/gw-N.log``; stopped after."""
    gateways = [
        GatewayProcess(redis_url, log_path=logs / f"gw-{n}.log", env=env).start()
        for n in range(count)
    ]
    try:
        yield gateways
    finally:
        for gateway in gateways:
            gateway.stop()
