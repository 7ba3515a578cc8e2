"""A small pure-Python renderer for the subset of Kustomize that deploy/ uses.

Used when neither `kubectl kustomize` (with Kustomize >= 4) nor `kustomize` is installed, and
checked against the real tool whenever one is (test_render.py), so it cannot quietly drift.

Supported: `resources` (files and directories), `components`, `configMapGenerator` with
`literals` (behaviors create and merge; content-hash suffix and the references to it), `patches`
with a strategic-merge patch file naming its target, `namespace`, `labels` (metadata, optionally
pod templates), `images`. Anything else in a kustomization raises `Unsupported` instead of being
ignored: keep deploy/ inside this subset or use the real tool.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Unsupported", "build"]

Obj = dict[str, Any]

_KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "configMapGenerator",
    "patches",
    "namespace",
    "labels",
    "images",
}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Strategic-merge keys (from the Kubernetes OpenAPI patchMergeKey) for the lists our patches
# touch; every other list is replaced, as strategic merge does for lists without a merge key.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
_GENERATED = "__generated__"  # marker key on generated objects until names are hashed


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def build(directory: Path) -> list[Obj]:
    """Render a kustomization directory like `kustomize build` (objects, order not significant)."""
    objects = _accumulate(directory, [], top_kind="Kustomization")
    _hash_generated_names(objects)
    return objects


def _load_kustomization(directory: Path) -> Obj:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = directory / name
        if path.is_file():
            data: Obj = yaml.safe_load(path.read_text()) or {}
            unknown = set(data) - _KNOWN_FIELDS
            if unknown:
                raise Unsupported(f"{path}: {sorted(unknown)}")
            return data
    raise FileNotFoundError(f"no kustomization in {directory}")


def _accumulate(directory: Path, objects: list[Obj], top_kind: str) -> list[Obj]:
    k = _load_kustomization(directory)
    if k.get("kind", "Kustomization") != top_kind:
        raise Unsupported(f"{directory}: expected kind {top_kind}")
    for entry in k.get("resources", []):
        objects.extend(_load_resource(directory / entry))
    for entry in k.get("components", []):
        objects = _accumulate(directory / entry, objects, top_kind="Component")
    for generator in k.get("configMapGenerator", []):
        _generate(objects, generator)
    for patch in k.get("patches", []):
        _patch(objects, directory, patch)
    if "namespace" in k:
        _set_namespace(objects, k["namespace"])
    for labels in k.get("labels", []):
        _add_labels(objects, labels)
    for image in k.get("images", []):
        _set_image(objects, image)
    return objects


def _load_resource(path: Path) -> list[Obj]:
    if path.is_dir():
        return _accumulate(path, [], top_kind="Kustomization")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _generate(objects: list[Obj], spec: Obj) -> None:
    if set(spec) - {"name", "behavior", "literals"}:
        raise Unsupported(f"configMapGenerator fields {sorted(spec)}")
    data = dict(line.split("=", 1) for line in spec.get("literals", []))
    behavior = spec.get("behavior", "create")
    if behavior == "merge":
        _find(objects, "ConfigMap", spec["name"]).setdefault("data", {}).update(data)
    elif behavior == "create":
        metadata = {"name": spec["name"]}
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        objects.append({**cm, _GENERATED: True})
    else:
        raise Unsupported(f"generator behavior {behavior}")


def _find(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} objects match {kind}/{name}")
    return matches[0]


def _patch(objects: list[Obj], directory: Path, spec: Obj) -> None:
    if set(spec) != {"path"}:
        raise Unsupported(f"patch fields {sorted(spec)}: only `path` to a strategic merge patch")
    patch = yaml.safe_load((directory / spec["path"]).read_text())
    target = _find(objects, patch["kind"], patch["metadata"]["name"])
    if target["apiVersion"] != patch["apiVersion"]:
        raise LookupError(f"patch {spec['path']} apiVersion differs from its target")
    merged = strategic_merge(target, patch)
    target.clear()
    target.update(merged)


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch, as far as our patches need it (no `$patch` directives)."""
    if isinstance(patch, dict) and isinstance(original, dict):
        if any(key.startswith("$") for key in patch):
            raise Unsupported("$-directives in patches")
        merged = dict(original)
        for key, value in patch.items():
            merged[key] = strategic_merge(original[key], value, key) if key in original else value
        return merged
    if isinstance(patch, list) and isinstance(original, list) and field in _MERGE_KEYS:
        return _merge_list(original, patch, _MERGE_KEYS[field])
    return copy.deepcopy(patch)


def _merge_list(original: list[Obj], patch: list[Obj], key: str) -> list[Obj]:
    # Kustomize (kyaml) puts the patch's elements first, in patch order, then the rest.
    by_key = {item[key]: item for item in original}
    merged = [strategic_merge(by_key[p[key]], p) if p[key] in by_key else p for p in patch]
    patched = {p[key] for p in patch}
    return merged + [item for item in original if item[key] not in patched]


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] not in _CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def _add_labels(objects: list[Obj], spec: Obj) -> None:
    allowed = {"pairs", "includeSelectors", "includeTemplates"}
    if spec.get("includeSelectors") or set(spec) - allowed:
        raise Unsupported(f"labels {sorted(spec)}")
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(spec["pairs"])
        if spec.get("includeTemplates") and obj["kind"] in _WORKLOADS:
            template = obj["spec"]["template"].setdefault("metadata", {})
            template.setdefault("labels", {}).update(spec["pairs"])


def _set_image(objects: list[Obj], spec: Obj) -> None:
    if set(spec) - {"name", "newName", "newTag"}:
        raise Unsupported(f"images {sorted(spec)}")
    for obj in objects:
        if obj["kind"] not in _WORKLOADS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, tag = container["image"], ""
            if ":" in name.rsplit("/", 1)[-1]:  # a tag, not a registry port
                name, tag = name.rsplit(":", 1)
            if name == spec["name"]:
                tag = spec.get("newTag", tag)
                container["image"] = spec.get("newName", name) + (f":{tag}" if tag else "")


def _hash_generated_names(objects: list[Obj]) -> None:
    renamed: dict[str, str] = {}
    for obj in objects:
        if obj.pop(_GENERATED, False):
            old = obj["metadata"]["name"]
            obj["metadata"]["name"] = renamed[old] = f"{old}-{kustomize_hash(obj)}"
    for obj in objects:
        if obj["kind"] in _WORKLOADS:
            _rename_configmap_references(obj["spec"]["template"]["spec"], renamed)


def _rename_configmap_references(pod: Obj, renamed: dict[str, str]) -> None:
    refs = [volume.get("configMap") for volume in pod.get("volumes", [])]
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        refs += [source.get("configMapRef") for source in container.get("envFrom", [])]
        refs += [v.get("valueFrom", {}).get("configMapKeyRef") for v in container.get("env", [])]
    for ref in refs:
        if ref is not None and ref.get("name") in renamed:
            ref["name"] = renamed[ref["name"]]


def kustomize_hash(obj: Obj) -> str:
    """Kustomize's name suffix for a ConfigMap (api/hasher/hasher.go): sha256 of a canonical JSON
    encoding, first 10 hex digits with some swapped for letters so the suffix never spells words.

    The encoding's "name" is always empty: kustomize looks the name up as one path segment
    "metadata/name", which never matches, so only the data decides the hash.
    """
    encoded: Obj = {"kind": "ConfigMap", "name": "", "data": obj["data"]}
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's encoding/json escapes these for safe embedding in HTML; the hash sees the escapes.
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escape)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))
