"""Every overlay renders, and the pure-Python renderer agrees with the real Kustomize."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import golden, kustomize
from .support import OVERLAYS, Obj, kustomize_command, render_with_tool

pytestmark = pytest.mark.deploy


def by_identity(objects: list[Obj]) -> dict[tuple[str, str, str | None, str], Obj]:
    index = {}
    for obj in objects:
        meta = obj["metadata"]
        index[obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]] = obj
    assert len(index) == len(objects), "two objects share apiVersion, kind, namespace and name"
    return index


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_gateway(overlay: str, rendered: dict[str, list[Obj]]) -> None:
    kinds = {obj["kind"] for obj in rendered[overlay]}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_python_renderer_matches_kustomize(overlay: str, overlay_dirs: dict[str, Path]) -> None:
    """Against the real Kustomize's output: recorded in tests/deploy/golden everywhere, and also
    rendered afresh where a recent kubectl is installed (which keeps the recording honest)."""
    expected = by_identity(golden.load(overlay))
    actual = by_identity(kustomize.build(overlay_dirs[overlay]))
    assert sorted(actual) == sorted(expected), "stale golden? run python -m tests.deploy.golden"
    for identity, obj in expected.items():
        assert actual[identity] == obj, identity
    command = kustomize_command()
    if command is not None:
        fresh = by_identity(render_with_tool(command, overlay_dirs[overlay]))
        assert fresh == expected, "the golden rendering is stale: python -m tests.deploy.golden"


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: [{name: x, count: 2}]\n")
    with pytest.raises(kustomize.Unsupported, match="replicas"):
        kustomize.build(tmp_path)


def test_configmap_hash_matches_kustomize_for_a_known_input() -> None:
    # Pinned from `kubectl kustomize` (Kustomize v5.5.0), so the hash is checked even where no
    # kubectl is installed; "<&>" covers Go's HTML escaping inside the hashed JSON.
    cm = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b", "c": "<&>"}}
    assert kustomize.kustomize_hash(cm) == "fbf2c25tb9"
