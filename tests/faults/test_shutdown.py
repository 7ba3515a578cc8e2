"""Graceful shutdown on SIGTERM, as Kubernetes sends it: readiness flips at once, new streams are
refused with 503 while the process still listens, every open stream is ended with a short
jittered ``retry:`` at a random moment of the drain window, and the process exits in budget."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.faults.support import RawStream, open_raw, read_to_end, read_until

pytestmark = pytest.mark.integration

STREAMS = 200
DRAIN_WINDOW = 2.0
GRACEFUL_TIMEOUT = 5.0


async def _open(port: int, n: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, RawStream]:
    reader, writer, stream = await open_raw(port, f"/subscribe/bye-{n % 10}")
    assert stream.status == 200
    await read_until(reader, stream, lambda s: bool(s.events))  # the id-only preamble
    return reader, writer, stream


# uvicorn re-raises the SIGTERM it handled once it is done, so a clean single-process exit reads
# as -15 (143 in a shell); with workers the supervisor exits 0 after its workers did. Anything
# else - a crash, a SIGKILL after a timeout - would show here.
@pytest.mark.parametrize(
    ("workers", "streams", "exit_code"),
    [(1, STREAMS, -signal.SIGTERM), (2, STREAMS // 2, 0)],
    ids=["one-process", "two-workers"],
)
async def test_sigterm_drains_every_stream_with_a_retry_hint_and_exits_in_budget(
    redis_server, start_gateway, workers, streams, exit_code
):
    gateway = start_gateway(
        redis_server.url,
        workers=workers,
        env={
            "GATEWAY_DRAIN_WINDOW": str(DRAIN_WINDOW),
            "GATEWAY_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        },
    )
    opened = []
    for start in range(0, streams, 50):
        opened += await asyncio.gather(*(_open(gateway.port, n) for n in range(start, start + 50)))
    preamble_retry = {stream.parser.retry for _, _, stream in opened}
    readers = [asyncio.create_task(read_to_end(r, s)) for r, _, s in opened]

    sigterm_at = time.monotonic()
    gateway.terminate()
    async with httpx.AsyncClient(timeout=5) as http:
        # Still listening, but no longer ready and refusing new streams. (With workers, uvicorn's
        # supervisor passes the signal on within its 0.5 s loop, hence the polling.)
        ready = await http.get(gateway.url + "/readyz")
        while ready.status_code == 200 and time.monotonic() - sigterm_at < 1.5:
            ready = await http.get(gateway.url + "/readyz")
        refused = await http.get(gateway.url + "/subscribe/bye-new")
    assert ready.status_code == 503 and ready.json() == {"status": "draining"}
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "unavailable"

    await asyncio.wait_for(asyncio.gather(*readers), timeout=GRACEFUL_TIMEOUT + 5)
    code = await asyncio.to_thread(gateway.wait, GRACEFUL_TIMEOUT + 5)
    exited = time.monotonic() - sigterm_at
    for _, writer, _ in opened:
        writer.close()

    closes = sorted(stream.ended_at - sigterm_at for _, _, stream in opened)
    hints = [stream.parser.retry for _, _, stream in opened]
    print(
        f"{streams} streams closed between {closes[0]:.2f}s and {closes[-1]:.2f}s after SIGTERM "
        f"(drain window {DRAIN_WINDOW}s); retry hints {min(hints)}..{max(hints)} ms; "
        f"process exited with {code} after {exited:.2f}s (graceful timeout {GRACEFUL_TIMEOUT}s)"
    )
    assert preamble_retry == {3000}
    for _, _, stream in opened:
        assert stream.body.finished, "a stream was cut instead of ended"
        assert stream.raw.endswith(b"\n\n") and b"retry: " in stream.raw.rsplit(b"id: ", 1)[-1]
        assert 250 <= stream.parser.retry <= 2000  # the farewell's short jittered hint
    assert len(set(hints)) > 1  # jittered, not one value for everybody
    assert closes[-1] - closes[0] > DRAIN_WINDOW / 2, "closes were not spread over the window"
    assert closes[-1] < DRAIN_WINDOW + 1.0
    assert code == exit_code
    assert exited < GRACEFUL_TIMEOUT
