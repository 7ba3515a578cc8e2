"""Subscribers and a paced publisher for ``nagle_netns.sh``: latency at light load.

    python -m tests.perf.nagle_client --host 10.203.0.1 --port 8080 --rate 20 --seconds 20

Runs inside the client's network namespace. ``--subs`` streams read ``GET /subscribe/{ch}``; one
keep-alive connection POSTs one 256-byte JSON message per request at ``--rate`` msg/s (paced on a
fixed schedule, pipelined). Each message carries ``time.monotonic_ns()`` taken just
before its POST is written; a subscriber takes ``now - ts`` when the frame's line arrives (same
process, same clock). Prints one JSON line: p50/p90/p99/max in ms, counts. Not a test: a tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

PAD = "x" * 200


async def _subscriber(host: str, port: int, channel: str, lat: list[float], ready: asyncio.Event,
                      seen: dict[int, int]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /subscribe/{channel} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
    first = True
    while True:
        line = await reader.readline()
        if not line:
            return
        now = time.monotonic_ns()
        if first and line.startswith(b"retry:"):
            first = False
            ready.set()
        if line.startswith(b"data:"):
            msg = json.loads(line[5:])
            lat.append((now - msg["ts"]) / 1e6)
            seen[msg["seq"]] = seen.get(msg["seq"], 0) + 1


async def _publisher(host: str, port: int, channel: str, rate: float, seconds: float) -> int:
    """Paced on a fixed schedule, pipelined: a POST does not wait for the one before (one round
    trip per POST would cap the rate at 1/RTT)."""
    reader, writer = await asyncio.open_connection(host, port)
    period, start, sent = 1.0 / rate, time.monotonic(), 0
    answers = asyncio.create_task(_answers(reader))
    while time.monotonic() - start < seconds:
        await asyncio.sleep(max(0.0, start + sent * period - time.monotonic()))
        ts = time.monotonic_ns()
        body = json.dumps({"seq": sent, "ts": ts, "ch": channel, "pad": PAD}).encode()
        head = f"POST /publish/{channel} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        sent += 1
    _target[0] = sent
    if _answered[0] < sent:
        await asyncio.wait([answers, asyncio.create_task(_all_answered.wait())], timeout=10,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    answers.cancel()
    writer.close()
    return sent


_answered, _target = [0], [1 << 62]
_all_answered = asyncio.Event()


async def _answers(reader: asyncio.StreamReader) -> None:
    while True:
        status_head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in status_head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not status_head.startswith(b"HTTP/1.1 202"):
            raise SystemExit(f"publish refused: {status_head[:40]!r}")
        _answered[0] += 1
        if _answered[0] >= _target[0]:
            _all_answered.set()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> dict[str, object]:
    channel = f"nagle-{time.monotonic_ns()}"
    lat: list[float] = []
    seen: dict[int, int] = {}
    readies = [asyncio.Event() for _ in range(args.subs)]
    subs = [asyncio.create_task(_subscriber(args.host, args.port, channel, lat, r, seen))
            for r in readies]  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    await asyncio.sleep(1.0)
    sent = await asyncio.wait_for(_publisher(args.host, args.port, channel, args.rate,
                                             args.seconds), args.seconds + 30)  # fmt: skip
    await asyncio.sleep(1.0)  # the last frames are in flight
    for task in subs:
        task.cancel()
    delivered = sum(seen.values())
    return {
        "rate": args.rate, "subs": args.subs, "sent": sent, "delivered": delivered,
        "expected": sent * args.subs,
        "p50_ms": round(statistics.median(lat), 2), "p90_ms": round(_pct(lat, 0.90), 2),
        "p99_ms": round(_pct(lat, 0.99), 2), "max_ms": round(max(lat), 2),
        "min_ms": round(min(lat), 2),
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--subs", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
