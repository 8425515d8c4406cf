"""docker-compose.yml, checked offline (no Docker engine here): the Compose schema (``docker-compose config`` of
Compose v2, which needs no engine), health checks and start order, resource limits, references between services,
files it mounts, the gateway configuration it runs, the images' stages, and the ports Prometheus scrapes."""

from __future__ import annotations

import hashlib
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

from gateway.config import load_settings
from tests.tools import tool

from .conftest import ROOT
from .test_dockerfile import STAGES

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
GATEWAY = SERVICES["gateway"]
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
    "read_only",
    "deploy",
    "profiles",
    "stop_grace_period",
}
SIMULATORS = ("openai-sim", "vllm-sim")


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _mounted_config() -> tuple[str, str]:
    """(the repository file, the path in the container) of the gateway's configuration."""
    target = _arg(GATEWAY["command"], "--config")
    (source,) = [v.split(":")[0] for v in GATEWAY["volumes"] if v.split(":")[1] == target]
    return source, target


SETTINGS = load_settings(ROOT / _mounted_config()[0])


def test_services_and_keys() -> None:
    assert set(SERVICES) == {"gateway", *SIMULATORS, "redis", "postgres", "prometheus", "grafana", "locust"}
    for name, svc in SERVICES.items():
        assert set(svc) <= _SERVICE_KEYS, (name, set(svc) - _SERVICE_KEYS)
        assert "image" in svc
        if "command" in svc:
            assert isinstance(svc["command"], list) and all(isinstance(x, str) for x in svc["command"])
        for port in svc.get("ports", []):
            host, _, container = str(port).partition(":")
            assert host.isdigit() and container.isdigit(), port


def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies() -> None:
    for name, svc in SERVICES.items():
        check = svc["healthcheck"]["test"]
        assert check[0] == "CMD" and len(check) > 1, name
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in SERVICES and cond == {"condition": "service_healthy"}, (name, dep)
    assert set(GATEWAY["depends_on"]) == {"redis", "postgres", *SIMULATORS}


def test_health_checks_ask_each_service_on_its_own_port() -> None:
    port = SETTINGS.server.port
    assert f"http://127.0.0.1:{port}/v1/health" in " ".join(GATEWAY["healthcheck"]["test"])
    for name in SIMULATORS:
        svc = SERVICES[name]
        url = f"http://127.0.0.1:{_arg(svc['command'], '--port')}/v1/models"
        assert url in " ".join(svc["healthcheck"]["test"])
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert SERVICES["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_every_service_has_cpu_and_memory_limits() -> None:
    for name, svc in SERVICES.items():
        limits = svc["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and limits["memory"][-1] in "MG", name


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
            assert svc["build"]["target"] in STAGES


def test_each_service_runs_from_the_image_that_holds_its_code() -> None:
    for svc in SERVICES.values():
        if "build" not in svc:
            continue
        module = svc["command"][2].split(".")[0]
        stage = STAGES[svc["build"]["target"]]
        assert module in {c[0] for c in stage.copied()}, (module, stage.name)
    assert GATEWAY["build"]["target"] == "gateway"
    assert {SERVICES[n]["build"]["target"] for n in (*SIMULATORS, "locust")} == {"testbed"}


def test_gateway_config_points_at_the_compose_services() -> None:
    sims = {name: int(_arg(SERVICES[name]["command"], "--port")) for name in SIMULATORS}
    for p in SETTINGS.providers:
        url = urlparse(p.base_url)
        assert (url.hostname, url.port) in sims.items()
    for name in sims:
        profile = _arg(SERVICES[name]["command"], "--profile")
        assert (ROOT / "simulators" / "profiles" / f"{profile}.yaml").is_file()
    assert urlparse(GATEWAY["environment"]["REDIS_URL"]).hostname == "redis"
    database = urlparse(GATEWAY["environment"]["DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert (database.scheme, database.hostname) == ("postgresql", "postgres")
    assert (database.username, database.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert database.path == "/" + postgres["POSTGRES_DB"]
    assert f"{SETTINGS.server.port}:{SETTINGS.server.port}" in GATEWAY["ports"]
    assert f"{SETTINGS.server.metrics_port}:{SETTINGS.server.metrics_port}" in GATEWAY["ports"]


def test_the_gateway_runs_read_only_with_multiprocess_metrics_and_quotas_shared_by_its_workers() -> None:
    workers = int(_arg(GATEWAY["command"], "--workers"))
    assert workers > 1 and SETTINGS.quota.replicas == workers
    assert GATEWAY["environment"]["PROMETHEUS_MULTIPROC_DIR"] in GATEWAY["tmpfs"]
    assert GATEWAY["read_only"] is True and "/tmp" in GATEWAY["tmpfs"]
    log_dir = str(SETTINGS.observability.request_log_path).rsplit("/", 1)[0]
    assert any(v.split(":")[1] == log_dir for v in GATEWAY["volumes"])


def _documented_keys() -> dict[str, str]:
    """``name: key`` pairs from the header comments of the compose gateway configuration."""
    keys = {}
    for line in (ROOT / _mounted_config()[0]).read_text().splitlines():
        parts = line.lstrip("# ").split()
        if line.startswith("#") and len(parts) >= 2 and parts[0].endswith(":") and parts[1].startswith("fl-"):
            keys[parts[0].rstrip(":")] = parts[1]
    return keys


def test_the_documented_keys_open_the_admin_routes_and_a_tier_with_limits() -> None:
    keys = _documented_keys()
    assert hashlib.sha256(keys.pop("admin").encode()).hexdigest() == SETTINGS.admin_key_sha256
    by_hash = {c.key_sha256: c for c in SETTINGS.consumers}
    consumers = {name: by_hash[hashlib.sha256(key.encode()).hexdigest()] for name, key in keys.items()}
    assert set(consumers) == {c.name for c in SETTINGS.consumers}
    limited = [SETTINGS.limits_for(c) for c in consumers.values()]
    assert any(lim.rpm is not None and lim.max_concurrency is not None for lim in limited)


def test_the_locust_service_runs_a_named_scenarios_load_against_the_gateway() -> None:
    locust = SERVICES["locust"]
    cmd = locust["command"]
    assert cmd[:3] == ["python", "-m", "experiments.loadtest"] and "--headless" in cmd
    assert _arg(cmd, "--url") == f"http://gateway:{SETTINGS.server.port}"
    scenario = _arg(cmd, "--scenario")
    assert scenario.startswith("${SCENARIO:-") and scenario.endswith("}")
    assert (ROOT / "experiments" / "scenarios" / f"{scenario[12:-1]}.yaml").is_file()
    key = _arg(cmd, "--key").removeprefix("${KEY:-").removesuffix("}")
    assert hashlib.sha256(key.encode()).hexdigest() in {c.key_sha256 for c in SETTINGS.consumers}
    assert locust["profiles"] == ["load"]  # started on demand, not by `up`


def test_prometheus_scrapes_the_gateway_metrics_port_and_loads_the_rules() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"gateway:{SETTINGS.server.metrics_port}" in targets
    for t in targets:
        assert t.split(":")[0] in SERVICES
    mounts = SERVICES["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus/slo-rules.yaml:/etc/prometheus/") for m in mounts)
    assert prom["rule_files"] == ["slo-rules.yaml"]


@pytest.mark.parametrize("profile", [[], ["--profile", "load"]])
def test_the_compose_schema_accepts_the_file(profile: list[str]) -> None:
    compose = ROOT / "docker-compose.yml"
    cmd = [tool("docker-compose"), "--project-directory", str(ROOT), "-f", str(compose), *profile, "config", "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert (out.returncode, out.stderr) == (0, ""), out.stdout + out.stderr
