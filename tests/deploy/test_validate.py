"""Every rendered object is valid Kubernetes, offline, against several API versions.

Built-in kinds go through `kubernetes-validate --strict` (unknown fields are errors) for every
Kubernetes minor it ships schemas for from MIN_KUBERNETES on; the ServiceMonitor, a CRD it has no
schema for, is checked against a small structural schema of the fields we use.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from packaging.version import Version

from .support import DEPLOY, OVERLAYS, Obj, find

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.deploy

# Oldest supported: PDB unhealthyPodEvictionPolicy and topology spread matchLabelKeys are on by
# default (beta) from 1.27; 1.26's schema rejects the PDB field.
MIN_KUBERNETES = Version("1.27")
# all_versions() lists each version twice (its plain and its strict schema directory).
SHIPPED = {v for v in kubernetes_validate.utils.all_versions() if Version(v) >= MIN_KUBERNETES}
VERSIONS = sorted(SHIPPED, key=Version)
CRDS = {"ServiceMonitor"}

# Prometheus Operator's Duration pattern (monitoring.coreos.com/v1).
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
SERVICEMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        },
                    },
                },
            },
        },
    },
}


def validate(obj: Obj, version: str) -> None:
    """Raise unless `obj` is valid; a missing schema is an error too (the library only warns)."""
    kubernetes_validate.validate(obj, version, strict=True)


def test_versions_cover_at_least_three_kubernetes_releases() -> None:
    assert len(VERSIONS) >= 3, VERSIONS


def unique_builtin_objects(rendered: dict[str, list[Obj]]) -> dict[str, Obj]:
    """Objects of every overlay, each distinct one once (most are shared), keyed for messages."""
    unique: dict[str, Obj] = {}
    for overlay in OVERLAYS:
        for obj in rendered[overlay]:
            if obj["kind"] not in CRDS:
                label = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
                unique.setdefault(json.dumps(obj, sort_keys=True), {"label": label, "obj": obj})
    return {entry["label"]: entry["obj"] for entry in unique.values()}


@pytest.mark.parametrize("version", VERSIONS)
def test_builtin_objects_validate_strictly(version: str, rendered: dict[str, list[Obj]]) -> None:
    objects = unique_builtin_objects(rendered)
    secret = yaml.safe_load((DEPLOY / "overlays/prod/redis-url-secret.example.yaml").read_text())
    objects["prod: the example Redis URL Secret"] = secret
    errors = []
    for label, obj in objects.items():
        try:
            validate(obj, version)
        except Exception as exc:  # collect all, so one run shows every problem
            errors.append(f"{label}: {getattr(exc, 'message', exc)}")
    assert not errors, "\n".join(errors)


def test_servicemonitor_is_structurally_valid(rendered: dict[str, list[Obj]]) -> None:
    monitor = find(rendered["prod+servicemonitor"], "ServiceMonitor")
    jsonschema.validate(monitor, SERVICEMONITOR_SCHEMA)
    for endpoint in monitor["spec"]["endpoints"]:
        assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])


def test_only_known_crds_are_rendered(rendered: dict[str, list[Obj]]) -> None:
    crds = {o["kind"] for objects in rendered.values() for o in objects} & CRDS
    assert crds == {"ServiceMonitor"}
    assert not [o for o in rendered["prod"] if o["kind"] in CRDS], "the component is opt-in"


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Obj]]) -> None:
    # Guards the guard: a misspelt field must fail, not be silently dropped by the API server.
    deployment = copy.deepcopy(find(rendered["prod"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.utils.ValidationError):
        validate(deployment, VERSIONS[-1])


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))
