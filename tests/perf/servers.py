"""Start and stop the servers under test, each with its own redis-server on an ephemeral port.

Every process is started in its own session and killed (whole process group) on exit, so a
benchmark interrupted at any point leaves nothing running. Logs go to a temporary directory and
their tail is shown when a server fails to come up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.perf.util import free_port, tree_pids, wait_port

ROOT = Path(__file__).resolve().parents[2]
BASELINES = Path(__file__).resolve().parent / "baselines"
BROADCASTER_VENV = BASELINES / ".venv-broadcaster"
BROADCASTER_PINS = [
    "broadcaster[redis]==0.3.1",
    "redis==7.4.1",
    "fastapi",
    "sse-starlette",
    "uvicorn[standard]",
]
NCHAN_PACKAGES = ["nginx-light", "libnginx-mod-nchan"]
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
SERVERS = ["gateway", "handwritten", "per-client", "broadcaster", "nchan"]


@dataclass
class Server:
    """A running server under test and how the load tool talks to it."""

    name: str
    port: int
    root_pid: int
    redis_url: str
    sub_path: str = "/subscribe/{ch}"
    pub_path: str = "/publish/{ch}"
    ndjson: bool = True
    notes: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def pids(self) -> list[int]:
        return tree_pids(self.root_pid)


class Launcher:
    """Owns every process it starts; ``close()`` kills them all."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sse-bench-"))
        self.log_dir = log_dir or self.dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None, **kw: object):
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            **kw,  # type: ignore[call-overload]
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_listening(self, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
        try:
            wait_port(port, 30, alive=lambda: proc.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name} did not start: {exc}\n{self.log_tail(name)}") from exc

    def redis(self, name: str) -> str:
        port = free_port()
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--maxclients", "20000", "--dir", str(self.dir)]
        proc = self.spawn(f"redis-{name}", cmd)
        self.wait_listening(f"redis-{name}", proc, port)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the servers -------------------------------------------------------------------

    def start(self, name: str, *, workers: int = 1, extra: list[str] | None = None) -> Server:
        first = len(self.procs)
        redis_url = self.redis(name)
        port = free_port()
        starters = {
            "gateway": self._gateway,
            "handwritten": self._handwritten,
            "per-client": self._per_client,
            "broadcaster": self._broadcaster,
            "nchan": self._nchan,
        }
        server = starters[name](port, redis_url, workers, extra or [])
        server.procs = self.procs[first:]
        return server

    def _gateway(self, port: int, redis_url: str, workers: int, extra: list[str]) -> Server:
        cmd = [sys.executable, "-m", "gateway", "--port", str(port), "--redis-url", redis_url]
        cmd += ["--workers", str(workers)]
        if _gateway_has_option("--host"):
            cmd += ["--host", "127.0.0.1"]
        # The benchmark measures the open gateway (no token checks); on a Redis URL that must be
        # asked for (gateway.auth.policy). Older commits ignore the unknown variable.
        proc = self.spawn("gateway", cmd + extra, env={"GATEWAY_AUTH": "off"}, cwd=ROOT)
        self.wait_listening("gateway", proc, port)
        return Server("gateway", port, proc.pid, redis_url)

    def _handwritten(self, port: int, redis_url: str, workers: int, extra: list[str]) -> Server:
        redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
        cmd = [sys.executable, "-m", "tests.perf.baselines.fanout_server", "--port", str(port)]
        proc = self.spawn("handwritten", [*cmd, "--redis-port", redis_port, *extra], cwd=ROOT)
        self.wait_listening("handwritten", proc, port)
        return Server("handwritten", port, proc.pid, redis_url)

    def _uvicorn(self, name: str, python: str, app: str, port: int, redis_url: str) -> int:
        cmd = [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--backlog", "4096", "--no-access-log", "--log-level", "warning"]
        proc = self.spawn(name, cmd, env={"BENCH_REDIS_URL": redis_url}, cwd=ROOT)
        self.wait_listening(name, proc, port)
        return proc.pid

    def _per_client(self, port: int, redis_url: str, workers: int, extra: list[str]) -> Server:
        app = "tests.perf.baselines.per_client_app:app"
        pid = self._uvicorn("per-client", sys.executable, app, port, redis_url)
        return Server("per-client", port, pid, redis_url)

    def _broadcaster(self, port: int, redis_url: str, workers: int, extra: list[str]) -> Server:
        python = ensure_broadcaster_venv()
        app = "tests.perf.baselines.broadcaster_app:app"
        pid = self._uvicorn("broadcaster", python, app, port, redis_url.rsplit("/", 1)[0])
        return Server("broadcaster", port, pid, redis_url)

    def _nchan(self, port: int, redis_url: str, workers: int, extra: list[str]) -> Server:
        ensure_nchan()
        conf = self.dir / "nginx.conf"
        conf.write_text(nchan_conf(self.dir, port, redis_url.rsplit("/", 1)[0], workers))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = self.spawn("nchan", [nginx, "-c", str(conf), "-p", str(self.dir), *extra])
        self.wait_listening("nchan", proc, port)
        return Server(
            "nchan",
            port,
            proc.pid,
            redis_url,
            sub_path="/sub/{ch}",
            pub_path="/pub/{ch}",
            ndjson=False,
        )

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HELP_CACHE: dict[str, str] = {}


def _gateway_has_option(option: str) -> bool:
    if "help" not in _HELP_CACHE:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "gateway", "--help"],
                capture_output=True,
                timeout=30,
                cwd=ROOT,
                check=False,
            )
            _HELP_CACHE["help"] = done.stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired):
            _HELP_CACHE["help"] = ""
    return option in _HELP_CACHE["help"]


def ensure_broadcaster_venv() -> str:
    """Create the broadcaster baseline's own virtualenv on first use; return its python."""
    python = BROADCASTER_VENV / "bin" / "python"
    stamp = BROADCASTER_VENV / ".pins"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(BROADCASTER_PINS):
        return str(python)
    print(f"creating {BROADCASTER_VENV} ({' '.join(BROADCASTER_PINS)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(BROADCASTER_VENV)], check=True, timeout=120)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *BROADCASTER_PINS], check=True, timeout=600)
    stamp.write_text("\n".join(BROADCASTER_PINS))
    return str(python)


def ensure_nchan() -> None:
    """Install Debian's nginx-light and libnginx-mod-nchan when missing (needs root)."""
    if NCHAN_MODULE.exists() and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        return
    print(f"installing {' '.join(NCHAN_PACKAGES)} with apt-get ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, timeout=600, env=env)
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    subprocess.run([*install, *NCHAN_PACKAGES], check=True, timeout=600, env=env)
    # Debian's package starts a system nginx on port 80 where it can; the benchmark runs its own.
    time.sleep(0.5)


def nchan_conf(base: Path, port: int, redis_url: str, workers: int) -> str:
    """nginx.conf for Nchan 1.3.x with Redis: publisher and EventSource subscriber locations."""
    return f"""
load_module {NCHAN_MODULE};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log warn;
events {{ worker_connections 30000; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {base}/client_body;
  proxy_temp_path {base}/proxy;
  fastcgi_temp_path {base}/fastcgi;
  uwsgi_temp_path {base}/uwsgi;
  scgi_temp_path {base}/scgi;
  upstream bench_redis {{ nchan_redis_server {redis_url}; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location ~ ^/pub/([A-Za-z0-9_.:-]+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_redis_pass bench_redis;
    }}
    location ~ ^/sub/([A-Za-z0-9_.:-]+)$ {{
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      nchan_redis_pass bench_redis;
    }}
  }}
}}
"""


@contextlib.contextmanager
def running(launcher: Launcher, name: str, **kw: object) -> Iterator[Server]:
    server = launcher.start(name, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        for proc in reversed(server.procs):
            launcher.stop(proc)
