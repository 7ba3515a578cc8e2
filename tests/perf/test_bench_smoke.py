"""Smoke run of the benchmark tool: ``--quick`` against the gateway and the hand-written baseline.

Asserts correctness only (every subscriber got every message once, in every scenario including
the unbatched fan-out and the soak) and that figures were printed. Timings are never asserted:
this machine is shared and small.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.perf.series import Series
from tests.perf.sse_client import ChunkDecoder, SseParser, parse_message
from tests.perf.stats import Histogram

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    assert shutil.which("redis-server"), "redis-server is missing: run the README's test command"
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    cmd = [sys.executable, "-m", "tests.perf.bench", "--quick", "--time-limit", "50"]
    done = subprocess.run(
        [*cmd, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    return done.stdout, json.loads(out.read_text())["results"]


@pytest.mark.timeout(75)
@pytest.mark.parametrize("server", ["gateway", "handwritten"])
def test_quick_run_delivers_every_message_exactly_once(
    quick_run: tuple[str, dict[str, Any]], server: str
) -> None:
    _, results = quick_run
    figures = results[server]
    assert "error" not in figures, figures["error"]
    for scenario in ("s1", "s4", "unbatched", "soak"):
        got = figures[scenario]
        assert got["published"] > 0, got
        assert got["connected"] == got["subscribers"], got
        # each channel's messages reach its subscribers_per_channel listeners
        assert got["delivered"] == got["published"] * got["subscribers"] // got["channels"], got
        assert (got["lost"], got["duplicated"], got["publish_errors"]) == (0, 0, 0), got
    for label in ("single", "ndjson"):
        s5 = figures["s5"]
        assert s5[f"{label}_published"] > 0, s5
        assert (s5[f"{label}_lost"], s5[f"{label}_duplicated"]) == (0, 0), s5
        assert s5[f"{label}_publish_errors"] == 0, s5
    for scenario in ("s2", "s3"):
        assert figures[scenario]["connected"] == figures[scenario]["subscribers"], figures


@pytest.mark.timeout(75)
def test_quick_soak_samples_rss_over_time(quick_run: tuple[str, dict[str, Any]]) -> None:
    soak = quick_run[1]["gateway"]["soak"]
    times = [t for t, _ in soak["rss_series"]]
    assert len(times) >= 3 and times == sorted(times), soak["rss_series"]
    assert all(mib > 0 for _, mib in soak["rss_series"]), soak["rss_series"]
    assert soak["warmup_s"] <= times[-1], soak
    for key in ("rss_warm_mib", "rss_end_mib", "p99_9_ms", "max_ms"):
        assert soak[key] is not None, (key, soak)


@pytest.mark.timeout(75)
def test_quick_run_prints_the_figures(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, _ = quick_run
    assert "## Results" in stdout
    table = stdout.split("## Results", 1)[1]
    assert "| figure | gateway | handwritten |" in table
    labels = ("deliveries per server CPU-second", "memory per idle subscriber", "p99", "Soak p99.9")
    for label in (*labels, "Unbatched deliveries per server CPU-second", "RSS slope"):
        assert label in table


def test_sse_parser_handles_crlf_comments_ids_and_split_reads() -> None:
    parser = SseParser()
    assert parser.feed(b"retry: 2000\r\nid: 5\r\n\r\n: ping\r\n\r\nid: 6\r") == []
    assert parser.feed(b'\ndata: {"seq":1,"ts":2}\r\n\r') == []
    events = parser.feed(b"\ndata: a\n\ndata: b\ndata: c\n\n")
    assert events == [
        (b"message", b"6", b'{"seq":1,"ts":2}'),
        (b"message", b"6", b"a"),
        (b"message", b"6", b"b\nc"),
    ]
    assert (parser.retry, parser.comments) == (2000, 1)


def test_chunk_decoder_reassembles_chunks_split_anywhere() -> None:
    decoder = ChunkDecoder()
    body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    got = b"".join(decoder.feed(body[i : i + 1]) for i in range(len(body)))
    assert got == b"helloabc"
    assert decoder.eof


def test_parse_message_falls_back_to_json_for_reencoded_payloads() -> None:
    assert parse_message(b'{"seq":12,"ts":34,"pad":"x"}') == (12, 34)
    assert parse_message(b'{"ts": 34, "seq": 12}') == (12, 34)


def test_histogram_percentiles_are_within_a_fraction_of_a_percent() -> None:
    hist = Histogram()
    for us in range(1, 100_001):
        hist.add(us)
    p50, p99 = hist.percentile(50), hist.percentile(99)
    assert p50 is not None and abs(p50 - 50_000) / 50_000 < 0.005
    assert p99 is not None and abs(p99 - 99_000) / 99_000 < 0.005


def test_histogram_max_is_the_largest_value_within_its_bucket() -> None:
    hist = Histogram()
    for us in (3, 700, 123_456):
        hist.add(us)
    top = hist.percentile(100)
    assert top is not None and abs(top - 123_456) / 123_456 < 0.005


def test_rss_slope_is_least_squares_per_minute() -> None:
    series = Series([], every=1.0)
    series.samples = [(float(t), 100 + t / 60, 0.0) for t in range(0, 301, 5)]  # 1 MiB a minute
    report = series.report(warmup=60)
    assert report["warmup_s"] == 60
    assert report["rss_slope_mib_per_min"] == pytest.approx(1.0, abs=1e-3)
    assert report["rss_growth_after_warmup_mib"] == pytest.approx(4.0, abs=1e-2)
