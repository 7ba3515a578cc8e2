"""Smoke run of the capacity model on a loopback cluster: it runs and prints figures."""

from __future__ import annotations

import pytest

from tests.perf import capacity

pytestmark = [pytest.mark.perf, pytest.mark.timeout(90)]


def test_capacity_model_runs_on_a_three_master_cluster(capsys):
    assert capacity.main(["--publishes", "300", "--fanouts", "2"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "cost per publish (script)" in out and out.count("| sharded delivery | 2 |") == 3
