"""deploy/docker-entrypoint.sh: the worker count it picks and the arguments it passes on.

Run with /bin/sh against stand-ins for `sse-gateway` (prints what it was given) and `nproc`,
and a fake cgroup `cpu.max`, so no container is needed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .support import DEPLOY, lint

pytestmark = pytest.mark.deploy

SCRIPT = DEPLOY / "docker-entrypoint.sh"
NODE_CPUS = 8


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    stubs = {
        "sse-gateway": 'printf "%s\\n" "workers=${GATEWAY_WORKERS:-unset}" "$@"',
        "nproc": f"echo {NODE_CPUS}",
    }
    for name, body in stubs.items():
        (directory / name).write_text(f"#!/bin/sh\n{body}\n")
        (directory / name).chmod(0o755)
    return directory


def run(bin_dir: Path, *args: str, cpu_max: str | None = None, **env: str) -> tuple[str, list[str]]:
    """(GATEWAY_WORKERS as sse-gateway saw it, the arguments it got)."""
    cpu_max_file = bin_dir.parent / "cpu.max"
    if cpu_max is not None:
        cpu_max_file.write_text(cpu_max + "\n")
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CGROUP_CPU_MAX": str(cpu_max_file),
        **env,
    }
    done = subprocess.run(
        ["/bin/sh", str(SCRIPT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    workers, *argv = done.stdout.splitlines()
    return workers.removeprefix("workers="), argv


def test_embedded_store_gets_one_worker(bin_dir: Path) -> None:
    assert run(bin_dir, "--port", "9000") == ("1", ["--port", "9000"])


@pytest.mark.parametrize(
    ("cpu_max", "workers"),
    [
        (None, str(NODE_CPUS)),  # no cgroup v2 file
        ("max 100000", str(NODE_CPUS)),  # no quota
        ("200000 100000", "2"),  # docker run --cpus 2
        ("150000 100000", "2"),  # 1.5 CPUs round up
        ("50000 100000", "1"),  # never below one
        ("1600000 100000", str(NODE_CPUS)),  # a quota above the CPUs there are
    ],
)
def test_with_redis_one_worker_per_usable_cpu(
    bin_dir: Path, cpu_max: str | None, workers: str
) -> None:
    assert run(bin_dir, cpu_max=cpu_max, GATEWAY_REDIS_URL="redis://r:6379/0")[0] == workers


@pytest.mark.parametrize(
    "args", [["--redis-url", "redis://r:6379/0"], ["--redis-url=redis://r:6379/0"]]
)
def test_redis_url_flag_counts_as_redis(bin_dir: Path, args: list[str]) -> None:
    assert run(bin_dir, *args, cpu_max="200000 100000") == ("2", args)


def test_explicit_workers_setting_is_left_alone(bin_dir: Path) -> None:
    assert run(bin_dir, GATEWAY_WORKERS="3", GATEWAY_REDIS_URL="redis://r")[0] == "3"


@pytest.mark.parametrize("args", [["--workers", "4"], ["--workers=4"]])
def test_workers_flag_is_left_to_the_gateway(bin_dir: Path, args: list[str]) -> None:
    assert run(bin_dir, *args, GATEWAY_REDIS_URL="redis://r") == ("unset", args)


def test_arguments_pass_through_verbatim(bin_dir: Path) -> None:
    args = ["--log-level", "debug", "a b", "", "--host=::"]
    assert run(bin_dir, *args)[1] == args


def test_shellcheck_finds_nothing() -> None:
    lint("shellcheck", "--shell=sh", str(SCRIPT))
