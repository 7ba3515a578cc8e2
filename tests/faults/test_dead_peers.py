"""Dead peers and churn: a client that vanished (here: frozen with SIGSTOP, so its kernel still
acknowledges but nobody reads) is found by the write timeout and its connection is dropped; and
thousands of connect/disconnect cycles leave nothing behind - no stream, subscription, hub
channel, task, file descriptor or Redis subscription."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from publisher import Publisher
from tests.faults.support import (
    ascrape,
    established_to,
    open_raw,
    read_until,
    request_bytes,
    scrape,
    wait_for,
)

pytestmark = pytest.mark.integration

FROZEN_CLIENT = r"""
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sock.connect(("127.0.0.1", int(sys.argv[1])))
request = "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" % sys.argv[2]
sock.sendall(request.encode())
sock.recv(4096)
print("ready", flush=True)
while sock.recv(65536):
    pass
"""


def _frozen_client(port: int, path: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", FROZEN_CLIENT, str(port), path], stdout=subprocess.PIPE
    )


def _publish(url: str, channel: str, count: int) -> None:
    with Publisher(url) as publisher:
        for start in range(0, count, 10):
            batch = [{"seq": n, "pad": "x" * 8000} for n in range(start, start + 10)]
            publisher.publish_many(channel, batch)


async def test_frozen_client_is_dropped_by_the_write_timeout(redis_server, start_gateway):
    gateway = start_gateway(
        redis_server.url,
        env={
            "GATEWAY_SEND_TIMEOUT": "1.5",
            # Room for everything: this client must be caught by the write timeout, not by
            # the buffer overflow of test_slow_consumer.
            "GATEWAY_SUBSCRIBER_BUFFER_BYTES": str(64 << 20),
            "GATEWAY_SUBSCRIBER_BUFFER_MESSAGES": "100000",
        },
    )
    client = _frozen_client(gateway.port, "/subscribe/frozen")
    try:
        assert client.stdout is not None and client.stdout.readline() == b"ready\n"
        os.kill(client.pid, signal.SIGSTOP)
        await asyncio.to_thread(_publish, redis_server.url, "frozen", 700)  # ~5.6 MB
        started = time.monotonic()
        assert await wait_for(lambda: scrape(gateway.url)["sse_connections"] == 0, timeout=30)
        metrics = await ascrape(gateway.url)
        assert metrics['sse_stream_closes_total{reason="send_timeout"}'] == 1
        # The unsent bytes no longer pin the connection: the kernel drops it (TCP_USER_TIMEOUT).
        assert await wait_for(lambda: established_to(gateway.port) == 0, timeout=30)
        print(f"frozen client's connection gone {time.monotonic() - started:.1f}s after publishing")
    finally:
        client.kill()
        client.wait(10)
        if client.stdout is not None:
            client.stdout.close()


CYCLES = 2000
CONCURRENCY = 40


async def _cycle(port: int, n: int) -> None:
    """Open a stream, read its preamble, hang up: politely (FIN) or abruptly (RST)."""
    if n % 100 == 99:  # a rejected request (405) in the mix
        path, method = f"/subscribe/leak-{n % 7}", "HEAD"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(path, method=method))
        await reader.readuntil(b"\r\n\r\n")
    else:
        path = f"/subscribe/leak-{n % 25}"
        if n % 3 == 0:
            path = f"/subscribe?channel=leak-{n % 25}&channel=leak-x{n % 5}"
        reader, writer, stream = await open_raw(port, path)
        assert stream.status == 200
        await read_until(reader, stream, lambda s: bool(s.events))
    if n % 2:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _churn(port: int, start: int, count: int) -> None:
    queue = iter(range(start, start + count))

    async def worker() -> None:
        for n in queue:
            await _cycle(port, n)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _settled(url: str, tasks: float) -> bool:
    metrics = scrape(url)
    return (
        metrics["sse_connections"] == 0
        and metrics["sse_subscriptions"] == 0
        and metrics["sse_hub_channels"] == 0
        and metrics["sse_asyncio_tasks"] == tasks
    )


async def test_thousands_of_connect_disconnect_cycles_leak_nothing(redis_server, start_gateway):
    gateway = start_gateway(redis_server.url)
    pid = gateway.proc.pid
    await _churn(gateway.port, 0, 50)  # warm up: lazily started tasks, pools, caches
    assert await wait_for(lambda: scrape(gateway.url)["sse_hub_channels"] == 0)
    await asyncio.sleep(1.5)  # let the sampler settle
    baseline = await ascrape(gateway.url)
    fds = len(os.listdir(f"/proc/{pid}/fd"))

    started = time.monotonic()
    await asyncio.wait_for(_churn(gateway.port, 50, CYCLES), timeout=90)
    took = time.monotonic() - started
    settled = await wait_for(lambda: _settled(gateway.url, baseline["sse_asyncio_tasks"]))
    after = await ascrape(gateway.url)
    print(
        f"{CYCLES} connect/disconnect cycles in {took:.1f}s ({CYCLES / took:.0f}/s); "
        f"streams opened {after['sse_streams_opened_total']:.0f}; tasks "
        f"{baseline['sse_asyncio_tasks']:.0f} -> {after['sse_asyncio_tasks']:.0f}"
    )
    assert settled, {k: v for k, v in after.items() if k.startswith("sse_") and "_bucket" not in k}
    rejected = sum(1 for n in range(50, 50 + CYCLES) if n % 100 == 99)
    opened = after["sse_streams_opened_total"] - baseline["sse_streams_opened_total"]
    assert opened == CYCLES - rejected
    assert established_to(gateway.port) == 0
    # Not exact: Redis pool connections come and go; a leak would be thousands.
    fds_after = len(os.listdir(f"/proc/{pid}/fd"))
    print(f"file descriptors: {fds} before, {fds_after} after")
    assert fds_after < fds + 20
    client = redis_server.client()
    assert client.pubsub_channels("leak-*") == []
    assert all(count == 0 for _, count in client.pubsub_numsub(*[f"leak-{n}" for n in range(25)]))
