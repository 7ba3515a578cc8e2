"""What the rendered manifests must say, beyond being valid: the deploy brief, as assertions.

Probes hit real routes (liveness without Redis, readiness with it), selectors select the pods,
the shutdown budget nests, pods meet the "restricted" Pod Security Standard with a read-only
root filesystem, requests come without a CPU limit, the ingress is SSE-safe and the network
policy opens only what the gateway uses.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import Any

import pytest

from .support import OVERLAYS, Obj, find, find_kind, gateway_container

pytestmark = pytest.mark.deploy

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}
PRESTOP_SECONDS = 5


def pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = find(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def pod_labels(objects: list[Obj]) -> dict[str, str]:
    labels: dict[str, str] = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config(objects: list[Obj]) -> dict[str, str]:
    (ref,) = gateway_container(objects)["envFrom"]
    data: dict[str, str] = find(objects, "ConfigMap", ref["configMapRef"]["name"])["data"]
    return data


@functools.cache
def gateway_app() -> Any:
    from gateway.app import create_app
    from gateway.settings import Settings

    return create_app(Settings())


def app_serves(path: str, method: str = "GET") -> bool:
    """Would the app route the request to something? Asks the router, without starting the app."""
    from starlette.routing import Match

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in gateway_app().routes)


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest, rendered: dict[str, list[Obj]]) -> list[Obj]:
    result: list[Obj] = rendered[request.param]
    return result


# Probes


def test_liveness_and_startup_use_healthz_readiness_uses_readyz(objects: list[Obj]) -> None:
    container = gateway_container(objects)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", 8000)


def test_probe_paths_are_routes_of_the_app(objects: list[Obj]) -> None:
    container = gateway_container(objects)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert app_serves(container[probe]["httpGet"]["path"]), probe


def test_servicemonitor_scrapes_a_route_of_the_app(rendered: dict[str, list[Obj]]) -> None:
    monitor = find(rendered["prod+servicemonitor"], "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        assert app_serves(endpoint["path"]), endpoint["path"]


def test_http_port_is_the_gateway_port(objects: list[Obj]) -> None:
    (port,) = gateway_container(objects)["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8000)
    assert config(objects)["GATEWAY_PORT"] == "8000"


# Selectors


def test_service_pdb_hpa_and_networkpolicy_select_the_pods(objects: list[Obj]) -> None:
    labels = pod_labels(objects)
    deployment = find(objects, "Deployment")
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert selects(find(objects, "Service")["spec"]["selector"], labels)
    assert selects(find(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    policy = find(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert selects(policy, labels)
    target = find(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sse-gateway"}
    for constraint in pod_spec(objects)["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"]["matchLabels"], labels)


def test_service_and_ingress_reach_the_http_port(objects: list[Obj]) -> None:
    service = find(objects, "Service")
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ("http", 8000)
    for rule in find(objects, "Ingress")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"] in ({"name": port["name"]}, {"number": port["port"]})


def test_ingress_exposes_the_client_api_and_nothing_else(objects: list[Obj]) -> None:
    paths = [p for r in find(objects, "Ingress")["spec"]["rules"] for p in r["http"]["paths"]]
    assert {(p["path"], p["pathType"]) for p in paths} == {
        ("/subscribe", "Prefix"),
        ("/publish", "Prefix"),
    }
    assert app_serves("/subscribe/news") and app_serves("/subscribe")
    assert app_serves("/publish/news", "POST")
    for internal in ("/metrics", "/healthz", "/readyz", "/docs", "/openapi.json"):
        assert not any(internal.startswith(p["path"]) for p in paths), internal


def test_servicemonitor_selects_the_service(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["prod+servicemonitor"]
    monitor = find(objects, "ServiceMonitor")
    service = find(objects, "Service")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= names
    assert monitor["metadata"].get("namespace") == service["metadata"].get("namespace")


def test_workloads_select_only_their_own_pods(objects: list[Obj]) -> None:
    # The dev Redis must not be caught by the gateway's selectors, nor the other way round.
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        chosen = [
            w for w in workloads if selects(selector, w["spec"]["template"]["metadata"]["labels"])
        ]
        assert chosen == [workload]


# Shutdown budget and rollout


def test_shutdown_budget_nests(objects: list[Obj]) -> None:
    settings = config(objects)
    drain = float(settings["GATEWAY_DRAIN_WINDOW"])
    graceful = float(settings["GATEWAY_GRACEFUL_TIMEOUT"])
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    prestop = gateway_container(objects)["lifecycle"]["preStop"]
    assert prestop == {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}
    assert drain < graceful
    assert PRESTOP_SECONDS + graceful < grace


def test_rollout_never_removes_a_serving_pod_first(objects: list[Obj]) -> None:
    strategy = find(objects, "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_hpa_owns_the_replica_count(objects: list[Obj]) -> None:
    # A replicas field would reset the autoscaled count on every apply.
    assert "replicas" not in find(objects, "Deployment")["spec"]
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_pdb_allows_one_disruption_at_a_time(objects: list[Obj]) -> None:
    spec = find(objects, "PodDisruptionBudget")["spec"]
    assert spec["maxUnavailable"] == 1


def test_pods_spread_across_nodes(objects: list[Obj]) -> None:
    keys = {c["topologyKey"] for c in pod_spec(objects)["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys


# Security


def all_pods(objects: list[Obj]) -> list[tuple[str, Obj]]:
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    return [(w["metadata"]["name"], w["spec"]["template"]["spec"]) for w in workloads]


def test_every_pod_meets_the_restricted_standard(objects: list[Obj]) -> None:
    for name, pod in all_pods(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert not container["ports"] or all("hostPort" not in p for p in container["ports"])


def test_read_only_root_has_a_writable_tmp(objects: list[Obj]) -> None:
    mounts = {m["mountPath"]: m["name"] for m in gateway_container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    tmp = volumes[mounts["/tmp"]]
    assert "emptyDir" in tmp and tmp["emptyDir"]["sizeLimit"]


def test_no_service_account_token_is_mounted(objects: list[Obj]) -> None:
    account = find(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    pod = pod_spec(objects)
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False


def test_namespaces_enforce_the_restricted_standard(objects: list[Obj]) -> None:
    (namespace,) = find_kind(objects, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    name = namespace["metadata"]["name"]
    assert all(o["metadata"].get("namespace") == name for o in objects if o is not namespace)


# Resources


def test_requests_and_a_memory_limit_but_no_cpu_limit(objects: list[Obj]) -> None:
    for name, pod in all_pods(objects):
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert set(resources["limits"]) == {"memory"}, name
            assert mebibytes(resources["requests"]["memory"]) <= mebibytes(
                resources["limits"]["memory"]
            )


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1024 if unit == "Gi" else 1)


# Ingress and network policy


def test_ingress_is_sse_safe(objects: list[Obj]) -> None:
    ingress = find(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    assert annotations[prefix + "proxy-http-version"] == "1.1"
    keepalive = float(config(objects)["GATEWAY_KEEPALIVE_INTERVAL"])
    assert keepalive < int(annotations[prefix + "proxy-read-timeout"])
    assert ingress["spec"]["ingressClassName"] == "nginx"


def ports(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for rule in rules for p in rule["ports"]}


def test_network_policy_opens_only_http_in_and_redis_and_dns_out(objects: list[Obj]) -> None:
    spec = find(objects, "NetworkPolicy")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert ports(spec["ingress"]) == {("TCP", 8000)}
    expected_out = {("TCP", 6379), ("TCP", 26379), ("UDP", 53), ("TCP", 53)}
    assert ports(spec["egress"]) == expected_out


# Configuration


def test_configmap_holds_only_valid_gateway_settings(objects: list[Obj]) -> None:
    settings_module = pytest.importorskip("gateway.settings")
    fields = settings_module.Settings.model_fields
    values = {key.removeprefix("GATEWAY_").lower(): v for key, v in config(objects).items()}
    assert set(values) <= set(fields), "ConfigMap keys that are not gateway settings"
    settings = settings_module.Settings(**{**values, "redis_url": "redis://redis:6379/0"})
    assert settings.drain_window < settings.graceful_timeout


def test_every_overlay_may_start_on_redis(objects: list[Obj]) -> None:
    """A gateway on Redis refuses to start without a JWT key or GATEWAY_AUTH=off: each overlay
    must give it one of them (a Secret reference stands for the value it will hold)."""
    settings_module = pytest.importorskip("gateway.settings")
    policy = pytest.importorskip("gateway.auth.policy")
    values = {key.removeprefix("GATEWAY_").lower(): v for key, v in config(objects).items()}
    for env in gateway_container(objects)["env"]:
        value = env.get("value", secrets.token_urlsafe(48) if "valueFrom" in env else "")
        values[env["name"].removeprefix("GATEWAY_").lower()] = value
    settings = settings_module.Settings(**{**values, "redis_url": "redis://redis:6379/0"})
    assert policy.start_refusal(settings) is None


def test_container_listens_on_all_interfaces(objects: list[Obj]) -> None:
    env = {e["name"]: e for e in gateway_container(objects)["env"]}
    assert env["GATEWAY_HOST"]["value"] == "0.0.0.0"


def test_dev_uses_the_in_cluster_redis(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["dev"]
    url = config(objects)["GATEWAY_REDIS_URL"]
    service = find(objects, "Service", "redis")
    assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    assert selects(
        service["spec"]["selector"],
        find(objects, "Deployment", "redis")["spec"]["template"]["metadata"]["labels"],
    )


@pytest.mark.parametrize("overlay", ["prod", "prod+servicemonitor"])
def test_prod_reads_the_redis_url_from_a_secret(
    overlay: str, rendered: dict[str, list[Obj]]
) -> None:
    objects = rendered[overlay]
    assert "GATEWAY_REDIS_URL" not in config(objects)
    env = {e["name"]: e for e in gateway_container(objects)["env"]}
    ref = env["GATEWAY_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "sse-gateway-redis", "key": "url"}
    assert not find_kind(objects, "Secret"), "credentials are created out of band, not in git"


def test_images_are_pinned(objects: list[Obj]) -> None:
    for _, pod in all_pods(objects):
        for container in pod["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
