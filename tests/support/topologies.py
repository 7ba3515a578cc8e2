"""Redis Sentinel and Redis Cluster deployments made of real processes on loopback ports.

Both can lose their master on purpose (``kill_master``) and wait for the replica that takes over,
with timeouts short enough (about a second to notice, a second or two to promote) for a test.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.ports import free_port, wait_for_port
from tests.support.redis_server import RedisServer

NODE_TIMEOUT_MS = 1000  # how long a silent master is tolerated before its replica takes over
# A master waits 5 s by default before a diskless full sync, hoping more replicas will join.
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


class SentinelSetup:
    """One master and one Sentinel watching it as ``mymaster``; ``replicas`` replicas of it."""

    def __init__(self, workdir: Path, replicas: int = 0) -> None:
        self.master = RedisServer()
        self.replicas = [RedisServer() for _ in range(replicas)]
        self.port = free_port()
        self.config = workdir / "sentinel.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster/0"

    def start(self) -> SentinelSetup:
        self.master.extra_args = list(FAST_SYNC)
        self.master.start()
        for replica in self.replicas:
            replica.extra_args = ["--replicaof", "127.0.0.1", str(self.master.port)]
            replica.start()
        down_after = NODE_TIMEOUT_MS if self.replicas else 5000
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds mymaster {down_after}\n"
            "sentinel failover-timeout mymaster 10000\n"
        )
        binary = shutil.which("redis-sentinel") or shutil.which("redis-server")
        assert binary is not None
        args = [binary, str(self.config)]
        if binary.endswith("redis-server"):
            args.append("--sentinel")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        self._wait(lambda: self.master_port() == self.master.port, "sentinel never learned it")
        for replica in self.replicas:
            self._wait(lambda r=replica: _link_up(r), "a replica never synced")  # type: ignore[misc]
        return self

    def master_port(self) -> int | None:
        reply = redis.Redis(port=self.port).execute_command(
            "SENTINEL", "get-master-addr-by-name", "mymaster"
        )
        return int(reply[1]) if reply else None

    def kill_master(self, timeout: float = 20.0, resume: RedisServer | None = None) -> RedisServer:
        """SIGKILL the master (then resume a paused replica); return the replica promoted."""
        old = self.master
        old.kill()
        if resume is not None:
            resume.resume()
        by_port = {r.port: r for r in self.replicas}
        self._wait(lambda: self.master_port() in by_port, "no replica was promoted", timeout)
        promoted = by_port[self.master_port()]  # type: ignore[index]
        self._wait(lambda: promoted.client().role()[0] == b"master", "not promoted", timeout)
        self.replicas.remove(promoted)
        self.replicas.append(old)  # closed with the rest
        self.master = promoted
        return promoted

    @staticmethod
    def _wait(check: object, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        for server in (self.master, *self.replicas):
            server.close()


def _link_up(server: RedisServer) -> bool:
    return server.client().info("replication").get("master_link_status") == "up"


class ClusterSetup:
    """``size`` masters, slots spread over them, each with ``replicas`` replicas."""

    def __init__(self, workdir: Path, size: int = 3, replicas: int = 0) -> None:
        self.workdir = workdir
        self.replicas = replicas
        self.nodes = [RedisServer() for _ in range(size * (1 + replicas))]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def first_url(self) -> str:
        """Only the first node: the rest must be discovered from the slot map."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> ClusterSetup:
        for node in self.nodes:
            node.extra_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.workdir / f"nodes-{node.port}.conf"),
                # The bus port defaults to port + 10000, past 65535 for a high ephemeral port.
                "--cluster-port", str(free_port()),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                *FAST_SYNC,
            ]  # fmt: skip
            node.start()
        ports = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *ports, "--cluster-yes",
             "--cluster-replicas", str(self.replicas)],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        self.wait_ok()
        if self.replicas:
            wanted = len(self.nodes) - len(self.nodes) // (1 + self.replicas)
            self._wait(lambda: sum(map(_link_up, self.live())) == wanted, "replicas never synced")
        return self

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None]

    def wait_ok(self, timeout: float = 20.0) -> None:
        self._wait(lambda: all(_cluster_ok(n) for n in self.live()), "cluster not ok", timeout)

    def node_by_port(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def owner(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot, as the first live node sees it."""
        node = self.live()[0].client()
        slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return self.node_by_port(int(master[1]))
        raise AssertionError(f"slot {slot} has no owner")

    def replica_of(self, master: RedisServer) -> RedisServer:
        node_id = master.client().execute_command("CLUSTER", "MYID")
        line = _text(master.client().execute_command("CLUSTER", "REPLICAS", node_id)[0])
        return self.node_by_port(int(line.split()[1].split(":")[1].split("@")[0]))

    def kill_master_of(
        self, key: str, timeout: float = 20.0, resume: RedisServer | None = None
    ) -> RedisServer:
        """SIGKILL the master serving ``key`` (then resume a paused replica); return its
        replica once promoted and the cluster ok."""
        victim = self.owner(key)
        victim_id = victim.client().execute_command("CLUSTER", "MYID")
        lines = victim.client().execute_command("CLUSTER", "REPLICAS", victim_id)
        ports = {int(line.split()[1].split(":")[1].split("@")[0]) for line in map(_text, lines)}
        candidates = [self.node_by_port(port) for port in ports]
        victim.kill()
        if resume is not None:
            resume.resume()

        def promoted() -> RedisServer | None:
            return next((n for n in candidates if n.client().role()[0] == b"master"), None)

        self._wait(lambda: promoted() is not None, "no replica was promoted", timeout)
        self.wait_ok(timeout)
        winner = promoted()
        assert winner is not None
        return winner

    _wait = staticmethod(SentinelSetup._wait)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _cluster_ok(node: RedisServer) -> bool:
    return node.client().cluster("info")["cluster_state"] == "ok"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
