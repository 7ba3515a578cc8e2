"""The one jittered exponential backoff (publisher/backoff.py) and its three users."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from publisher.backoff import Backoff, backoff_delay

ROOT = Path(__file__).resolve().parents[2]


def test_each_step_doubles_up_to_the_cap_and_is_jittered_within_its_upper_half() -> None:
    for failures, step in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, 5.0), (40, 5.0)]:
        delays = [backoff_delay(failures, 0.1, 5.0) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 10  # really jittered, not a fixed value


def test_the_counter_advances_per_failure_and_resets_after_a_success() -> None:
    random.seed(7)
    backoff = Backoff(base=1.0, cap=60.0)
    first = [backoff.next_delay() for _ in range(4)]
    for delay, step in zip(first, (1.0, 2.0, 4.0, 8.0), strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_many_clients_do_not_retry_in_lockstep() -> None:
    random.seed(1)
    delays = {round(backoff_delay(3, 0.5, 30.0), 3) for _ in range(100)}
    assert len(delays) > 50


@pytest.mark.parametrize(
    "path", ["gateway/broker/link.py", "publisher/bridge/core.py", "publisher/subscriber.py"]
)
def test_every_retry_loop_uses_the_shared_helper_not_a_copy(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "publisher.backoff"
        for alias in node.names
    }
    assert imported & {"Backoff", "backoff_delay"}, path
    powers = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
    ]
    assert not powers, f"{path} computes its own exponential step"
