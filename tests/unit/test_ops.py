"""Unit tests of the operational pieces: stream slots, request ids and JSON log lines, the
metrics directory the CLI prepares, and the signal handlers the drain wraps and restores."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import pytest

from gateway import metrics
from gateway.limits import OverCapacity, StreamSlots
from gateway.logs import REQUEST_ID, JsonFormatter, RequestIdMiddleware
from gateway.shutdown import DrainOnSignal


def test_stream_slots_refuse_past_the_limit_and_release_once():
    slots = StreamSlots(2)
    first, second = slots.acquire(), slots.acquire()
    with pytest.raises(OverCapacity) as refused:
        slots.acquire()
    assert refused.value.status == 503 and refused.value.code == "over_capacity"
    first()
    first()  # idempotent: a double release must not free a slot it does not hold
    assert slots.in_use == 1
    slots.acquire()
    second()
    assert slots.in_use == 1


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_request_id_and_extra_fields():
    token = REQUEST_ID.set("abc-1")
    try:
        line = json.loads(JsonFormatter().format(_record(reason="slow", seconds=1.5)))
    finally:
        REQUEST_ID.reset(token)
    assert line["msg"] == "hello x" and line["level"] == "info" and line["logger"] == "gateway.test"
    assert line["request_id"] == "abc-1" and line["reason"] == "slow" and line["seconds"] == 1.5
    assert "request_id" not in json.loads(JsonFormatter().format(_record()))


@pytest.mark.parametrize(
    ("sent", "kept"),
    [(b"req-1.a:b_c", True), (b"x" * 128, True), (b"x" * 129, False), (b"bad id", False)],
)
async def test_request_id_is_kept_only_when_it_is_a_sane_token(sent, kept):
    seen: list[str | None] = []
    sent_headers: list[dict] = []

    async def app(scope, receive, send):
        seen.append(REQUEST_ID.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message):
        sent_headers.append(dict(message["headers"]))

    scope = {"type": "http", "headers": [(b"x-request-id", sent)]}
    await RequestIdMiddleware(app)(scope, None, send)
    echoed = sent_headers[0][b"x-request-id"].decode()
    assert echoed == seen[0]
    assert (echoed == sent.decode()) is kept
    assert REQUEST_ID.get() is None


def test_metrics_dir_is_made_for_workers_and_emptied_when_given(monkeypatch, tmp_path: Path):
    # setenv first, so the teardown restores "unset" even though the code under test sets it.
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    assert metrics.prepare_multiprocess_dir(1) is None
    made = metrics.prepare_multiprocess_dir(2)
    assert made is not None and os.environ[metrics.MULTIPROC_ENV] == made
    metrics.remove_multiprocess_dir(made)
    assert not Path(made).exists()

    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    assert metrics.prepare_multiprocess_dir(1) == str(tmp_path)
    assert not stale.exists() and (tmp_path / "keep.txt").exists()
    metrics.remove_multiprocess_dir(str(tmp_path))  # not one we made: left alone
    assert tmp_path.exists()


async def test_drain_wraps_and_restores_the_signal_handlers():
    class FakeHub:
        subscriptions: set[object] = set()
        drained: list[float] = []

        def drain(self, window: float) -> None:
            self.drained.append(window)

    handed: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: handed.append(sig))
    try:
        hub = FakeHub()
        drain = DrainOnSignal(hub, 0.1)  # type: ignore[arg-type]
        assert drain.install()
        signal.raise_signal(signal.SIGTERM)
        for _ in range(50):
            if handed:
                break
            await asyncio.sleep(0.02)
        assert hub.drained == [0.1] and handed == [signal.SIGTERM]
        await drain.close()
        assert signal.getsignal(signal.SIGTERM) != drain._on_signal
    finally:
        signal.signal(signal.SIGTERM, previous)
