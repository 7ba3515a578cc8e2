"""Redis Sentinel and Redis Cluster deployments made of real processes on loopback ports."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.ports import free_port, wait_for_port
from tests.support.redis_server import RedisServer


class SentinelSetup:
    """One master and one Sentinel watching it as ``mymaster``."""

    def __init__(self, workdir: Path) -> None:
        self.master = RedisServer()
        self.port = free_port()
        self.config = workdir / "sentinel.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster/0"

    def start(self) -> SentinelSetup:
        self.master.start()
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
            "sentinel down-after-milliseconds mymaster 5000\n"
        )
        binary = shutil.which("redis-sentinel") or shutil.which("redis-server")
        assert binary is not None
        args = [binary, str(self.config)]
        if binary.endswith("redis-server"):
            args.append("--sentinel")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        sentinel = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while not sentinel.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"):
            assert time.monotonic() < deadline, "sentinel never learned the master"
            time.sleep(0.1)
        return self

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.master.close()


class ClusterSetup:
    """Three masters, slots spread over them, no replicas."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.nodes = [RedisServer() for _ in range(size)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> ClusterSetup:
        for node in self.nodes:
            node.extra_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.workdir / f"nodes-{node.port}.conf"),
                # The bus port defaults to port + 10000, past 65535 for a high ephemeral port.
                "--cluster-port", str(free_port()),
            ]  # fmt: skip
            node.start()
        ports = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *ports, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while any(n.client().cluster("info")["cluster_state"] != "ok" for n in self.nodes):
            assert time.monotonic() < deadline, "cluster never became ok"
            time.sleep(0.1)
        return self

    def close(self) -> None:
        for node in self.nodes:
            node.close()
