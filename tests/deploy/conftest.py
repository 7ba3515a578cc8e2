"""Session fixtures: every overlay rendered once (see support.py for how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import kustomize
from .support import OVERLAYS, Obj, kustomize_command, overlay_dir, render_with_tool


@pytest.fixture(scope="session")
def overlay_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    workdir = tmp_path_factory.mktemp("overlays")
    return {name: overlay_dir(name, workdir) for name in OVERLAYS}


@pytest.fixture(scope="session")
def rendered(overlay_dirs: dict[str, Path]) -> dict[str, list[Obj]]:
    command = kustomize_command()
    if command is None:
        return {name: kustomize.build(path) for name, path in overlay_dirs.items()}
    return {name: render_with_tool(command, path) for name, path in overlay_dirs.items()}
