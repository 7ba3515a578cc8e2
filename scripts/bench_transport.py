"""Transport benchmark for docs/design/transport.md: one server at a time on loopback.

    .venv/bin/python scripts/bench_transport.py --server this|main|asgi-uvicorn [--subs 1000]

* fan-out: ``--subs`` subscribers on one channel, ``--messages`` single-message POSTs from one
  keep-alive connection with up to ``--window`` pipelined requests in flight; prints deliveries
  per server CPU-second (utime+stime of the server process from /proc, over the publish phase);
* connect: ``--connect`` subscribers opened at once; prints the seconds until every one has its
  preamble, and the server CPU per connect.

Servers: ``this`` (python -m gateway from this tree), ``main`` (python -m gateway from --main-dir,
the tree before this change), ``asgi-uvicorn`` (``uvicorn gateway.asgi:app``: the plain ASGI app
under uvicorn's own protocol, no fast layer). Bounded: every phase has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.ports import free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

BODY = b'{"payload":"' + b"x" * 240 + b'"}'  # 256 bytes of JSON


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_server(
    kind: str, port: int, redis_url: str, main_dir: str, nagle: bool
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_REDIS_URL=redis_url, GATEWAY_LOG_LEVEL="warning")
    env["GATEWAY_MAX_CONNECTIONS"] = "18000"
    env["GATEWAY_TCP_NODELAY"] = "false" if nagle else "true"
    env["GATEWAY_SUBSCRIBER_BUFFER_MESSAGES"] = "100000"
    env["GATEWAY_SUBSCRIBER_BUFFER_BYTES"] = str(64 << 20)
    if kind == "asgi-uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", "gateway.asgi:app", "--port", str(port)]
        cmd += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
        cwd = str(ROOT)
    else:
        cmd = [sys.executable, "-m", "gateway", "--port", str(port), "--log-level", "warning"]
        cwd = main_dir if kind == "main" else str(ROOT)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL)


class Sub(asyncio.Protocol):
    def __init__(self, opened: asyncio.Future[None] | None, counts: list[int]) -> None:
        self.opened, self.counts = opened, counts
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"GET /subscribe/bench HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.opened is not None and not self.opened.done() and b"retry:" in data:
            self.opened.set_result(None)
        self.counts[0] += data.count(b"\ndata: ") + data.startswith(b"data: ")


async def wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read(100)
            writer.close()
            if b" 200 " in data:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("server not ready")


async def open_subs(port: int, n: int, counts: list[int]) -> list[Sub]:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(n)]
    subs: list[Sub] = []

    async def one(future: asyncio.Future[None]) -> None:
        _, sub = await loop.create_connection(lambda: Sub(future, counts), "127.0.0.1", port)
        subs.append(sub)

    await asyncio.wait_for(asyncio.gather(*(one(f) for f in futures)), 120)
    await asyncio.wait_for(asyncio.gather(*futures), 120)
    return subs


async def publish(port: int, messages: int, window: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /publish/bench HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
    )
    sent = answered = 0
    buffer = b""
    while answered < messages:
        while sent < messages and sent - answered < window:
            writer.write(request)
            sent += 1
        data = await asyncio.wait_for(reader.read(65536), 30)
        if not data:
            raise ConnectionError("publisher connection closed")
        buffer += data
        done = buffer.count(b"HTTP/1.1 202")
        if done:
            answered += done
            buffer = buffer[buffer.rfind(b"HTTP/1.1 202") + 12 :]
    writer.close()


async def start_spy(args: argparse.Namespace, pid: int, phase: str) -> Any:
    """py-spy on the server for one phase (collapsed stacks; tests/perf/pyspy.py summarises)."""
    if not args.py_spy or args.spy_phase != phase:
        return None
    exe = str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured phase
        [exe, "record", "--pid", str(pid), "--format", "raw", "--nonblocking", "--rate", "250",
         "-o", args.py_spy],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(1)
    return spy


def stop_spy(spy: Any) -> None:
    if spy is not None:
        spy.send_signal(2)
        spy.wait(30)


async def run(args: argparse.Namespace, pid: int, port: int) -> None:
    await wait_ready(port, time.monotonic() + 60)
    counts = [0]
    subs = await open_subs(port, args.subs, counts)
    await asyncio.sleep(1)
    counts[0] = 0
    spy = await start_spy(args, pid, "fanout")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await publish(port, args.messages, args.window)
    expected = args.subs * args.messages
    deadline = time.monotonic() + 120
    while counts[0] < expected and time.monotonic() < deadline:  # noqa: ASYNC110 - polled count
        await asyncio.sleep(0.05)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    stop_spy(spy)
    print(
        f"{args.server}: fan-out {args.subs} subs x {args.messages} POSTs: {counts[0]}/{expected} "
        f"deliveries, server CPU {cpu:.2f}s, {counts[0] / cpu:,.0f} deliveries per CPU-second "
        f"(wall {wall:.2f}s)",
        flush=True,
    )
    for sub in subs:
        assert sub.transport is not None
        sub.transport.close()
    await asyncio.sleep(2)
    if args.connect:
        rss0 = rss_kib(pid)
        spy = await start_spy(args, pid, "connect")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        subs = await open_subs(port, args.connect, [0])
        wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        stop_spy(spy)
        await asyncio.sleep(2)
        per_conn = (rss_kib(pid) - rss0) / args.connect
        print(
            f"{args.server}: connect {args.connect} subscribers: {wall:.2f}s, server CPU "
            f"{cpu:.2f}s ({cpu / args.connect * 1e6:.0f} us per connect), "
            f"{per_conn:.1f} KiB RSS per idle subscriber",
            flush=True,
        )
        for sub in subs:
            assert sub.transport is not None
            sub.transport.close()
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="this", choices=["this", "main", "asgi-uvicorn"])
    parser.add_argument("--main-dir", default="/work/main")
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--connect", type=int, default=5000)
    parser.add_argument("--nagle", action="store_true", help="GATEWAY_TCP_NODELAY=false")
    parser.add_argument("--py-spy", default="", help="write py-spy collapsed stacks here")
    parser.add_argument("--spy-phase", default="fanout", choices=["fanout", "connect"])
    args = parser.parse_args()
    redis = RedisServer().start()
    port = free_port()
    proc = start_server(args.server, port, redis.url, args.main_dir, args.nagle)
    try:
        uvloop.run(run(args, proc.pid, port))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        redis.stop()


if __name__ == "__main__":
    main()
