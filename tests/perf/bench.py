"""Fan-out benchmark: the gateway beside its baselines, on loopback, bounded in count and time.

    python -m tests.perf.bench --all                 # every server, every scenario
    python -m tests.perf.bench --quick               # tiny scale: gateway + hand-written, ~20 s
    python -m tests.perf.bench --servers gateway,nchan --scenarios s1,s4 --json out.json

    python -m tests.perf.bench --servers gateway,nchan --scenarios unbatched,soak --soak-seconds 60

Scenarios: s1 saturation (deliveries per server CPU-second), s2 memory per idle subscriber,
s3 time to connect N subscribers, s4 latency at 2000 msg/s over HTTP on 1000 channels,
s5 HTTP publish throughput (single JSON vs NDJSON), unbatched fan-out (one producer connection,
one message per POST, pipelined), soak (minutes at 1000 msg/s: tail latency and RSS over time).
Every server is fed through its own HTTP publish endpoint. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Any

from tests.perf.scenarios import SCENARIOS, Scale
from tests.perf.servers import SERVERS, Launcher, running
from tests.perf.util import raise_nofile

QUICK_SERVERS = ["gateway", "handwritten"]

# (scenario, key, label, format) rows of the printed table
ROWS = [
    ("s1", "deliveries_per_cpu_s", "S1 deliveries per server CPU-second", "{:,.0f}"),
    ("s1", "deliveries_per_s", "S1 deliveries per wall second", "{:,.0f}"),
    ("s1", "server_cpu_pct", "S1 server CPU (% of one core)", "{:.0f}"),
    ("s1", "published", "S1 messages published", "{:,}"),
    ("s1", "p50_ms", "S1 p50 latency under saturation (ms)", "{:.1f}"),
    ("s1", "p99_ms", "S1 p99 latency under saturation (ms)", "{:.1f}"),
    ("s1", "check", "S1 delivered/lost/duplicated", "{}"),
    ("s2", "kib_per_connection", "S2 memory per idle subscriber (KiB)", "{:.1f}"),
    ("s2", "rss_after_mib", "S2 server RSS with the idle subscribers (MiB)", "{:.1f}"),
    ("s3", "all_headers_s", "S3 connect N subscribers: all headers (s)", "{:.2f}"),
    ("s3", "all_first_bytes_s", "S3 connect N subscribers: all first frames (s)", "{:.2f}"),
    ("s3", "errors", "S3 connection errors", "{}"),
    ("s4", "p50_ms", "S4 p50 publish->receive latency (ms)", "{:.2f}"),
    ("s4", "p90_ms", "S4 p90 latency (ms)", "{:.2f}"),
    ("s4", "p99_ms", "S4 p99 latency (ms)", "{:.2f}"),
    ("s4", "publish_rate", "S4 achieved publish rate (msg/s)", "{:,.0f}"),
    ("s4", "server_cpu_pct", "S4 server CPU (% of one core)", "{:.0f}"),
    ("s4", "check", "S4 delivered/lost/duplicated", "{}"),
    ("s5", "single_msgs_per_s", "S5 HTTP single-message publish (msg/s)", "{:,.0f}"),
    ("s5", "single_msgs_per_cpu_s", "S5 single: messages per server CPU-second", "{:,.0f}"),
    ("s5", "ndjson_msgs_per_s", "S5 HTTP NDJSON publish (msg/s)", "{:,.0f}"),
    ("s5", "ndjson_msgs_per_cpu_s", "S5 NDJSON: messages per server CPU-second", "{:,.0f}"),
    ("unbatched", "deliveries_per_cpu_s", "Unbatched deliveries per server CPU-second", "{:,.0f}"),
    ("unbatched", "deliveries_per_s", "Unbatched deliveries per wall second", "{:,.0f}"),
    ("unbatched", "server_cpu_pct", "Unbatched server CPU (% of one core)", "{:.0f}"),
    ("unbatched", "check", "Unbatched delivered/lost/duplicated", "{}"),
    ("soak", "p50_ms", "Soak p50 latency (ms)", "{:.2f}"),
    ("soak", "p99_ms", "Soak p99 latency (ms)", "{:.2f}"),
    ("soak", "p99_9_ms", "Soak p99.9 latency (ms)", "{:.2f}"),
    ("soak", "max_ms", "Soak max latency (ms)", "{:.1f}"),
    ("soak", "publish_rate", "Soak achieved publish rate (msg/s)", "{:,.0f}"),
    ("soak", "server_cpu_pct", "Soak server CPU (% of one core)", "{:.0f}"),
    ("soak", "rss_warm_mib", "Soak RSS after warm-up (MiB)", "{:.1f}"),
    ("soak", "rss_end_mib", "Soak RSS at the end (MiB)", "{:.1f}"),
    ("soak", "rss_slope_mib_per_min", "Soak RSS slope after warm-up (MiB/min)", "{:+.3f}"),
    ("soak", "check", "Soak delivered/lost/duplicated", "{}"),
]


def _derive(scenario: str, figures: dict[str, Any]) -> None:
    if "delivered" in figures:
        figures["check"] = f"{figures['delivered']}/{figures['lost']}/{figures['duplicated']}"
        figures["correct"] = (
            figures["lost"] == 0
            and figures["duplicated"] == 0
            and figures["connected"] == figures["subscribers"]
            and figures["published"] > 0
        )


def run(
    servers: list[str],
    scenarios: list[str],
    scale: Scale,
    extra: dict[str, list[str]],
    log_dir: Path | None = None,
    workers: int = 1,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    launcher = Launcher(log_dir)
    try:
        for name in servers:
            results[name] = {}
            try:
                with running(launcher, name, extra=extra.get(name), workers=workers) as server:
                    for scenario in scenarios:
                        print(f"[{name}] {scenario} ...", flush=True)
                        started = time.monotonic()
                        try:
                            figures = SCENARIOS[scenario](server, scale)
                        except Exception as exc:
                            traceback.print_exc()
                            figures = {"error": repr(exc)[:500]}
                        figures["scenario_seconds"] = round(time.monotonic() - started, 2)
                        _derive(scenario, figures)
                        results[name][scenario] = figures
                        print(
                            f"[{name}] {scenario}: {json.dumps(figures, default=str)}", flush=True
                        )
                        time.sleep(scale.settle)  # let the server finish closing the connections
            except Exception as exc:  # a server that does not start is reported, not fatal
                print(f"[{name}] could not run: {exc}", file=sys.stderr, flush=True)
                results[name]["error"] = str(exc)[:2000]
    finally:
        launcher.close()
    return results


def table(results: dict[str, dict[str, Any]], scenarios: list[str]) -> str:
    names = list(results)
    lines = ["| figure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for scenario, key, label, fmt in ROWS:
        if scenario not in scenarios:
            continue
        cells = []
        for name in names:
            figures = results[name].get(scenario, {})
            value = figures.get(key)
            if value is None:
                cells.append("error" if "error" in figures or "error" in results[name] else "n/a")
            else:
                cells.append(fmt.format(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="every server and every scenario")
    parser.add_argument("--quick", action="store_true", help="tiny scale, gateway + hand-written")
    parser.add_argument("--servers", help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--time-limit",
        type=float,
        help="hard wall-clock limit, seconds (default 1800, 60 with --quick, plus the soak)",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes for the gateway and nchan"
    )
    for f in fields(Scale):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None)
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="NAME=ARG",
        help="extra argument for one server, e.g. handwritten=--nagle (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    scale = Scale.quick() if args.quick else Scale()
    for f in fields(Scale):
        value = getattr(args, f.name)
        if value is not None:
            setattr(scale, f.name, value)
    default_servers = QUICK_SERVERS if args.quick else SERVERS
    servers = args.servers.split(",") if args.servers else default_servers
    scenarios = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    unknown = set(servers) - set(SERVERS) | set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown server or scenario: {', '.join(sorted(unknown))}")
    extra: dict[str, list[str]] = {}
    for item in args.server_arg:
        name, _, value = item.partition("=")
        extra.setdefault(name, []).append(value)
    soak = (scale.soak_seconds + 60) * len(servers) if "soak" in scenarios else 0
    limit = args.time_limit or (60 if args.quick else 1800) + soak
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(int(limit))
    nofile = raise_nofile()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"servers: {servers}; scenarios: {scenarios}; fd limit {nofile}; cpus {os.cpu_count()}")
    print(f"load average before: {load} (other work on the machine skews wall-clock figures)")
    started = time.monotonic()
    try:
        results = run(servers, scenarios, scale, extra, args.log_dir, args.workers)
    except BenchTimeout:
        print(f"stopped: the run took longer than --time-limit {limit:.0f} s", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n## Results ({time.monotonic() - started:.0f} s; load average at the end {load})\n")
    print(table(results, scenarios))
    if args.json:
        args.json.write_text(json.dumps({"scale": scale.__dict__, "results": results}, indent=1))
    return 0


class BenchTimeout(BaseException):
    """Not an ``Exception``: nothing on the way may swallow it before the clean-up runs."""


def _timeout(signum: int, frame: object) -> None:
    raise BenchTimeout("benchmark hit its --time-limit")


if __name__ == "__main__":
    sys.exit(main())
