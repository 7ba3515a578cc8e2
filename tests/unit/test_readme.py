"""The README's promises that code can check: its settings table, its two commands, CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _settings_table():
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts/settings_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_table_matches_the_settings_model():
    readme = (ROOT / "README.md").read_text()
    assert _settings_table().replace_in(readme) == readme, (
        "README's configuration table is stale: run python scripts/settings_table.py --write"
    )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "    make run\n" in readme and "    make test\n" in readme
    assert "make test" in (ROOT / ".ci/run").read_text()
