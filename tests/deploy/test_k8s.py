"""deploy/k8s: each overlay rendered by ``kubectl kustomize`` and every object validated by kubernetes-validate
(strict: unknown fields are errors) against the oldest and newest Kubernetes it targets; then what the gateway
needs of them — probes, limits, a non-root read-only container, draining, the HPA's targets — asserted."""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import Settings, parse_settings
from tests.tools import tool

from .conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
IN_FLIGHT = "faultline_requests_in_flight"


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def obj(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in render(overlay) if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def kinds(overlay: str) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in render(overlay)}


def gateway_container(overlay: str) -> dict[str, Any]:
    (container,) = obj(overlay, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def settings(overlay: str) -> Settings:
    (cm,) = [d for d in render(overlay) if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway")]
    return parse_settings(yaml.safe_load(cm["data"]["gateway.yaml"]))


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [d for d in render(overlay) if d["kind"] in {"Deployment", "StatefulSet", "Job"}]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_kubernetes(overlay: str, version: str) -> None:
    for doc in render(overlay):
        kubernetes_validate.validate(doc, version, strict=True)


def test_each_overlay_has_what_it_should() -> None:
    common = {
        ("Namespace", "faultline"),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
        ("HorizontalPodAutoscaler", "gateway"),
        ("PodDisruptionBudget", "gateway"),
    }
    dev_only = {
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("Deployment", "locust-master"),
        ("Service", "locust-master"),
        ("Deployment", "locust-worker"),
        ("Deployment", "openai-sim"),
        ("Deployment", "vllm-sim"),
    }
    assert common <= kinds("prod") and not dev_only & kinds("prod")
    assert {(k, "faultline-dev" if k == "Namespace" else n) for k, n in common} | dev_only <= kinds("dev")
    for overlay in OVERLAYS:
        namespace = "faultline-dev" if overlay == "dev" else "faultline"
        assert {d["metadata"].get("namespace", namespace) for d in render(overlay)} == {namespace}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_written(overlay: str) -> None:
    assert not [d for d in render(overlay) if d["kind"] == "Secret"]
    env = {e["name"]: e for e in gateway_container(overlay)["env"]}
    assert "secretKeyRef" in env["OPENAI_API_KEY"]["valueFrom"]
    database = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]  # the system of record: its URL holds a password
    assert set(env["DATABASE_URL"]) == {"name", "valueFrom"} and database["optional"] is (overlay == "dev")
    cfg = settings(overlay)
    assert all(p.api_key_env is None or p.api_key_env in env for p in cfg.providers)
    if overlay == "prod":  # an external Redis (or Redis Cluster): its URL, password included, from a Secret
        assert (
            set(env["REDIS_URL"]) == {"name", "valueFrom"}
            and env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is False
        )
    else:
        assert env["REDIS_URL"]["value"] == "redis://redis:6379/0" and ("Service", "redis") in kinds(overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_probes_serves_and_reads_its_config(overlay: str) -> None:
    deploy = obj(overlay, "Deployment", "gateway")
    pod = deploy["spec"]["template"]
    c = gateway_container(overlay)
    cfg = settings(overlay)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": cfg.server.port, "metrics": cfg.server.metrics_port}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v1/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/v1/health"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 30
    assert c["command"][:3] == ["python", "-m", "gateway"] and _arg(c["command"], "--host") == "0.0.0.0"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    config_dir, _, config_file = _arg(c["command"], "--config").rpartition("/")
    assert mounts[config_dir]["readOnly"] is True and config_file == "gateway.yaml"
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mounts[config_dir]["name"]]
    assert volume["configMap"]["name"].startswith("gateway-config")
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(cfg.server.metrics_port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_writes_only_to_its_volumes(overlay: str) -> None:
    c = gateway_container(overlay)
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounted = {m["mountPath"] for m in c["volumeMounts"]}
    log_dir = str(settings(overlay).observability.request_log_path).rpartition("/")[0]
    assert {"/tmp", env["PROMETHEUS_MULTIPROC_DIR"], log_dir} <= mounted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_streams_in_flight_finish_before_the_pod_is_killed(overlay: str) -> None:
    pod = obj(overlay, "Deployment", "gateway")["spec"]["template"]["spec"]
    pre_stop = gateway_container(overlay)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    deadline = settings(overlay).router.timeouts.request_deadline_s
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + deadline


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_replicated_spread_and_protected(overlay: str) -> None:
    deploy = obj(overlay, "Deployment", "gateway")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["replicas"] >= 2
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spread = deploy["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    pdb = obj(overlay, "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = obj(overlay, "Service", "gateway")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= {p["name"] for p in gateway_container(overlay)["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_hpa_scales_on_cpu_and_requests_in_flight(overlay: str) -> None:
    hpa = obj(overlay, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["minReplicas"] <= obj(overlay, "Deployment", "gateway")["spec"]["replicas"]
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert 0 < metrics["Resource"]["resource"]["target"]["averageUtilization"] <= 90
    pods = metrics["Pods"]["pods"]
    assert pods["metric"]["name"] == IN_FLIGHT and int(pods["target"]["averageValue"]) > 0
    # scale out before a pod's workers queue attempts at one provider's concurrency limit
    workers = int(_arg(gateway_container(overlay)["command"], "--workers"))
    assert int(pods["target"]["averageValue"]) < workers * settings(overlay).router.shedding.provider_limit
    source = (ROOT / "gateway" / "observability" / "metricfamilies.py").read_text()
    assert re.search(rf'Gauge\(\s*"{IN_FLIGHT}"', source)  # the gauge the adapter rule reads


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_quota_replicas_count_the_gateway_processes_at_the_hpa_minimum(overlay: str) -> None:
    hpa = obj(overlay, "HorizontalPodAutoscaler", "gateway")["spec"]
    workers = int(_arg(gateway_container(overlay)["command"], "--workers"))
    assert settings(overlay).quota.replicas == hpa["minReplicas"] * workers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_limits_and_runs_non_root_on_a_read_only_filesystem(overlay: str) -> None:
    for w in workloads(overlay):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            name = f"{w['metadata']['name']}/{c['name']}"
            for key in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][key]), name
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "livenessProbe" in c or "readinessProbe" in c or w["metadata"]["name"] == "locust-worker", name


def test_prod_pins_its_images() -> None:
    for w in workloads("prod"):
        for c in w["spec"]["template"]["spec"]["containers"]:
            image, _, tag = c["image"].rpartition(":")
            assert image and tag and tag not in {"latest", "dev"}, c["image"]


def test_the_locust_workers_find_their_master_and_the_gateway() -> None:
    master = obj("dev", "Deployment", "locust-master")["spec"]["template"]["spec"]["containers"][0]
    worker = obj("dev", "Deployment", "locust-worker")["spec"]["template"]["spec"]["containers"][0]
    svc = obj("dev", "Service", "locust-master")
    assert "--master" in master["command"] and "--worker" in worker["command"]
    assert _arg(worker["command"], "--master-host") == svc["metadata"]["name"]
    assert {p["port"] for p in svc["spec"]["ports"]} == {8089, 5557}
    gateway = f"http://gateway:{settings('dev').server.port}"
    assert _arg(master["command"], "--url") == gateway == _arg(worker["command"], "--url")
    assert obj("dev", "Deployment", "locust-worker")["spec"]["replicas"] >= 2


def test_the_deployment_guide_states_the_manifests_figures() -> None:
    doc = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    pod = obj("prod", "Deployment", "gateway")["spec"]["template"]["spec"]
    hpa = {o: obj(o, "HorizontalPodAutoscaler", "gateway")["spec"] for o in OVERLAYS}
    in_flight = next(m for m in hpa["prod"]["metrics"] if m["type"] == "Pods")["pods"]["target"]["averageValue"]
    cpu = next(m for m in hpa["prod"]["metrics"] if m["type"] == "Resource")["resource"]["target"]
    assert f"| terminationGracePeriodSeconds | {pod['terminationGracePeriodSeconds']} |" in doc
    assert f"`faultline_requests_in_flight` at {in_flight} per pod" in doc
    assert f"CPU at {cpu['averageUtilization']} % of requests" in doc
    assert f"3-{hpa['prod']['maxReplicas']} pods" in doc and hpa["prod"]["minReplicas"] == 3
    for overlay, (pods, workers) in {"dev": (2, 2), "prod": (3, 2)}.items():
        assert f"{pods} \N{MULTIPLICATION SIGN} {workers} = {settings(overlay).quota.replicas}" in doc
        assert hpa[overlay]["minReplicas"] == pods
