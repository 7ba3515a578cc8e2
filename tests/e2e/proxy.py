"""A real nginx in front of the gateway replicas, run in the foreground from a test's tmp dir.

The config is rendered from ``nginx.conf.template``; nginx runs with ``-p <dir> -c <conf> -e <log>``
so nothing outside the test's directory is read or written. As root, the worker runs as root too:
pytest's tmp dirs are private (0700), so the default ``nobody`` worker could not use them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
PAGES = HERE / "js" / "pages"

INSTALL_HINT = (
    "run `bash scripts/ensure/e2e.sh && bash scripts/ensure/redis.sh` as root (the test command "
    "does): they install nginx, chromium, node with tests/e2e/node_modules, and redis-server"
)


def nginx_binary() -> str | None:
    """Debian puts nginx in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class Nginx:
    def __init__(self, directory: Path, upstream_ports: list[int]) -> None:
        self.dir = directory
        self.upstream_ports = upstream_ports
        self.port = free_port()
        self.page_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def page_origin(self) -> str:
        """The second origin: it serves the test pages and proxies nothing."""
        return f"http://127.0.0.1:{self.page_port}"

    def render(self) -> Path:
        servers = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=0;" for port in self.upstream_ports
        )
        text = TEMPLATE.read_text()
        for name, value in {
            "USER": "user root;" if os.geteuid() == 0 else "",
            "DIR": str(self.dir),
            "SERVERS": servers,
            "PORT": str(self.port),
            "PAGE_PORT": str(self.page_port),
            "PAGES": str(PAGES),
        }.items():
            text = text.replace(f"@{name}@", value)
        conf = self.dir / "nginx.conf"
        conf.write_text(text)
        return conf

    def start(self) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(f"nginx is not installed: {INSTALL_HINT}")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.render()
        cmd = [binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected its config:\n{check.stderr}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        wait_for_port(self.page_port)
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGTERM): open streams are cut, which is fine once a test is over."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def access_log(self) -> list[str]:
        """One line per finished request (a stream is logged when it ends)."""
        path = self.dir / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
