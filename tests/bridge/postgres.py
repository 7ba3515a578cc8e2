"""A real PostgreSQL server the test owns (initdb + postgres on an ephemeral loopback port), so
it can be stopped and restarted. ``scripts/ensure/postgres.sh`` installs the binaries.

initdb and postgres refuse to run as root; as root we run them as the ``postgres`` user that the
Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.ports import free_port


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/ensure/postgres.sh")
    return Path(initdb).parent


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sse-pg-"))
        self.data = self.dir / "data"
        self.bin = _bindir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        return [*prefix, *args]

    def init(self) -> PostgresServer:
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(self.dir, record.pw_uid, record.pw_gid)
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            self._command(*command, "--no-sync", "-E", "UTF8"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def start(self) -> PostgresServer:
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        command += ["-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(self._command(*command), stdout=log, stderr=log)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, "postgres exited"
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def notify(self, channel: str, payload: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def _postmaster_pid(self) -> int | None:
        # runuser does not pass signals on, so we signal the postmaster itself.
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _signal(self, signum: int) -> None:
        pid = self._postmaster_pid()
        if self.proc is not None and self.proc.poll() is None and pid is not None:
            os.kill(pid, signum)

    def stop(self) -> None:
        """Fast shutdown: open sessions (the bridge's) are terminated, as in a real restart."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGINT)
            self.proc.wait(30)
        self.proc = None

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
