"""Redis-side capacity model for a sharded cluster, measured from Redis's own CPU.

    python -m tests.perf.capacity                 # 3 masters, no replicas
    python -m tests.perf.capacity --replicas 1    # 3 masters + 3 replicas (replication cost)

Starts a loopback Redis Cluster (tests/support/topologies.py), then, one shard at a time so CPU
deltas belong to it, runs the gateway's own publish script (publisher.wire) over one pipelined
connection and reads every node's CPU before and after: ``INFO cpu`` (getrusage, µs resolution),
cross-checked with ``/proc/<pid>/stat`` (10 ms ticks). Experiments:

* ``sharded publish``: SHARDED_PUBLISH_SCRIPT (XADD + trims + SPUBLISH), no subscriber;
* ``sharded delivery``: the same with K subscriber connections SSUBSCRIBEd on the owner, which
  is what K gateway processes following the channel are: cost per delivery = (cost with K
  - cost with none) / K;
* ``classic publish``: PUBLISH_SCRIPT (classic PUBLISH) on the same cluster, to show what the
  cluster bus broadcast costs every *other* node.

Prints a table and the derived model (publishes/s one shard's core can carry for K gateways).
Figures on a shared machine are noisy; compare rows of one run. Bounded: every experiment is a
fixed number of publishes, the cluster is killed on exit.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hiredis

from gateway.broker.connection import pack_args
from publisher.wire import (
    PUBLISH_SCRIPT,
    SHARDED_PUBLISH_SCRIPT,
    encode_json,
    publish_args,
    shard_channel,
    stream_key,
)
from tests.support.redis_server import RedisServer
from tests.support.topologies import ClusterSetup

BATCH = 200  # calls per pipelined write
WAITED = "sharded publish + WAIT 1"
WARM_UP = 2000  # publishes before measuring: history at its trimmed length, as in production
IDLE_SAMPLE = 0.5  # seconds of idle CPU (serverCron, cluster bus pings) sampled and subtracted
PAYLOAD = encode_json({"kind": "price", "sku": "A-1042", "value": 1234.5, "pad": "x" * 48})


def redis_cpu(node: RedisServer) -> float:
    info = node.client().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def proc_cpu(node: RedisServer) -> float:
    assert node.proc is not None
    fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in 100 Hz ticks


def idle_rates(nodes: list[RedisServer]) -> list[float]:
    """Each node's background CPU per second, subtracted from the deltas."""
    before = [redis_cpu(node) for node in nodes]
    time.sleep(IDLE_SAMPLE)
    return [(redis_cpu(node) - b) / IDLE_SAMPLE for node, b in zip(nodes, before, strict=True)]


class Subscribers:
    """``count`` raw connections SSUBSCRIBEd to one shard channel, drained by one thread."""

    def __init__(self, port: int, channel: str, count: int) -> None:
        self.socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"*2\r\n" + pack_args("SSUBSCRIBE", shard_channel(channel)))
            self.socks.append(sock)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in selector.select(0.1):
                self.received += len(key.fileobj.recv(1 << 20))  # type: ignore[union-attr]
        selector.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


def publish(
    port: int, channel: str, script: str, count: int, sharded: bool, wait: int = 0
) -> float:
    """``count`` one-message publishes over one pipelined connection; returns wall seconds.
    ``wait``: each batch is followed by ``WAIT wait 1000``, as the gateway's pipe does per flush
    under GATEWAY_PUBLISH_MIN_REPLICAS."""
    sha = __import__("hashlib").sha1(script.encode()).hexdigest()
    args = publish_args(channel, [("", PAYLOAD)], sharded=sharded)
    call = b"*%d\r\n" % (4 + len(args)) + pack_args("EVALSHA", sha, 1, stream_key(channel), *args)
    sock = socket.create_connection(("127.0.0.1", port))
    reader = hiredis.Reader()
    sock.sendall(b"*3\r\n" + pack_args("SCRIPT", "LOAD", script))
    _replies(sock, reader, 1)
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        tail = b"*3\r\n" + pack_args("WAIT", wait, 1000) if wait else b""
        sock.sendall(call * n + tail)
        replies = _replies(sock, reader, n + (1 if wait else 0))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RuntimeError(f"publish refused: {reply}")
        if wait and replies[-1] < wait:
            raise RuntimeError(f"only {replies[-1]} of {wait} replicas acknowledged")
    took = time.perf_counter() - started
    sock.close()
    return took


def _replies(sock: socket.socket, reader: Any, count: int) -> list[Any]:
    replies: list[Any] = []
    while len(replies) < count:
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("redis closed the connection")
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies


@dataclass
class Row:
    experiment: str
    subscribers: int
    publishes: int
    owner_us: float  # owner's CPU per publish, INFO cpu
    owner_proc_us: float  # the same from /proc
    others_us: float  # every other node's CPU per publish, summed
    wall_rate: float  # publishes/s the one load connection reached (client-bound here)


def measure(
    cluster: ClusterSetup, owner: RedisServer, channel: str, experiment: str, k: int, n: int
) -> Row:
    sharded = experiment != "classic publish"
    script = SHARDED_PUBLISH_SCRIPT if sharded else PUBLISH_SCRIPT
    wait = 1 if experiment == WAITED else 0
    subs = Subscribers(owner.port, channel, k) if k else None
    publish(owner.port, channel, script, WARM_UP, sharded)  # the stream at its trimmed length
    time.sleep(0.2)
    others = [node for node in cluster.live() if node is not owner]
    nodes = [owner, *others]
    idle = idle_rates(nodes)
    before = [redis_cpu(node) for node in nodes], proc_cpu(owner), time.perf_counter()
    took = publish(owner.port, channel, script, n, sharded, wait)
    time.sleep(0.3)  # let deliveries drain
    after = [redis_cpu(node) for node in nodes], proc_cpu(owner), time.perf_counter()
    if subs is not None:
        subs.close()
    elapsed = after[2] - before[2]
    deltas = [b - a - rate * elapsed for a, b, rate in zip(before[0], after[0], idle, strict=True)]
    return Row(
        experiment,
        k,
        n,
        owner_us=deltas[0] / n * 1e6,
        owner_proc_us=(after[1] - before[1]) / n * 1e6,
        others_us=sum(deltas[1:]) / n * 1e6,
        wall_rate=n / took,
    )


def run(replicas: int, publishes: int, fanouts: list[int]) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sse-capacity-") as workdir:
        cluster = ClusterSetup(Path(workdir), size=3, replicas=replicas)
        try:
            cluster.start()
            masters = [n for n in cluster.live() if n.client().role()[0] == b"master"]
            for index, master in enumerate(masters):  # one channel per shard, shard by shard
                channel = next(
                    c for c in (f"cap-{index}-{i}" for i in range(999))
                    if cluster.owner(stream_key(c)) is master
                )  # fmt: skip
                rows.append(measure(cluster, master, channel, "sharded publish", 0, publishes))
                for k in fanouts:
                    rows.append(measure(cluster, master, channel, "sharded delivery", k, publishes))
                rows.append(measure(cluster, master, channel, "classic publish", 0, publishes))
                if replicas:
                    rows.append(measure(cluster, master, channel, WAITED, 0, publishes))
        finally:
            cluster.close()
    return rows


def model(rows: list[Row]) -> dict[str, float]:
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    publish_us = mean([r.owner_us for r in rows if r.experiment == "sharded publish"])
    deliveries = [
        (r.owner_us - publish_us) / r.subscribers
        for r in rows
        if r.experiment == "sharded delivery"
    ]
    classic_others = mean([r.others_us for r in rows if r.experiment == "classic publish"])
    sharded_others = mean([r.others_us for r in rows if r.experiment == "sharded publish"])
    return {
        "publish_us": publish_us,
        "delivery_us": mean(deliveries),
        "sharded_others_us": sharded_others,
        "classic_others_us": classic_others,
    }


def report(rows: list[Row], figures: dict[str, float], replicas: int) -> str:
    lines = [
        f"Redis Cluster, 3 masters, {replicas} replica(s) each; CPU per publish in µs",
        "| experiment | K subs | publishes | owner (INFO cpu) | owner (/proc) | other nodes "
        "| wall/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.experiment} | {r.subscribers} | {r.publishes} | {r.owner_us:.1f} | "
            f"{r.owner_proc_us:.1f} | {r.others_us:.1f} | {r.wall_rate:,.0f} |"
        )
    p, d = figures["publish_us"], figures["delivery_us"]
    lines += [
        "",
        f"cost per publish (script): {p:.1f} µs; per delivery to one gateway process: {d:.2f} µs",
        f"other nodes per publish: sharded {figures['sharded_others_us']:.1f} µs, "
        f"classic {figures['classic_others_us']:.1f} µs",
        "| gateway processes per shard (K) | publishes/s one shard core carries |",
        "|---:|---:|",
    ]
    for k in (1, 10, 50, 100, 500):
        lines.append(f"| {k} | {1e6 / (p + k * d):,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--publishes", type=int, default=10_000)
    parser.add_argument("--fanouts", default="50,200", help="subscriber counts K to measure")
    parser.add_argument("--json", type=Path, help="also write the rows and model here")
    args = parser.parse_args(argv)
    fanouts = [int(k) for k in args.fanouts.split(",") if k]
    rows = run(args.replicas, args.publishes, fanouts)
    figures = model(rows)
    print(report(rows, figures, args.replicas))
    if args.json:
        payload = {"rows": [r.__dict__ for r in rows], "model": figures}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
