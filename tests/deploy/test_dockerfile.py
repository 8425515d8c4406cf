"""deploy/Dockerfile, checked offline (no Docker engine here): hadolint finds nothing, and each image holds what it
must and nothing more — the gateway image the runtime lock only, as a non-root user, with a health check."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from gateway.config import load_settings
from tests.tools import tool

from .conftest import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.steps if i == instruction]

    def env(self) -> dict[str, str]:
        pairs = [p.split("=", 1) for v in self.values("ENV") for p in shlex.split(v)]
        return dict(pairs)

    def copied(self) -> list[list[str]]:
        return [shlex.split(v) for v in self.values("COPY")]


def _stages() -> dict[str, Stage]:
    parser = DockerfileParser(str(DOCKERFILE))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        if item["instruction"] == "FROM":
            base, _, name = item["value"].partition(" AS ")
            current = stages.setdefault(name, Stage(name, base))
        elif current is not None and item["instruction"] != "COMMENT":
            current.steps.append((item["instruction"], item["value"]))
    return stages


STAGES = _stages()
GATEWAY, TESTBED = STAGES["gateway"], STAGES["testbed"]


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [tool("hadolint"), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (out.returncode, json.loads(out.stdout or "[]")) == (0, []), out.stdout + out.stderr
    # any rule switched off carries its reason on the same line
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore=" in line:
            assert re.search(r"hadolint ignore=[\w,]+\s+\S", line), line


def test_every_image_starts_from_the_slim_python_and_runs_as_a_non_root_user() -> None:
    arg = DockerfileParser(str(DOCKERFILE)).structure
    default = next(i["value"] for i in arg if i["instruction"] == "ARG" and i["value"].startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", default)
    assert {s.base for s in STAGES.values()} == {"${PYTHON_IMAGE}"}
    for stage in (GATEWAY, TESTBED):
        user = stage.values("USER")[-1]
        assert user.split(":")[0] not in {"root", "0"}, stage.name
        assert stage.env()["PYTHONDONTWRITEBYTECODE"] == "1" and stage.env()["PYTHONUNBUFFERED"] == "1"


def _venv_source(stage: Stage) -> Stage:
    (copy,) = [c for c in stage.copied() if c[0].startswith("--from=")]
    assert copy[1:] == ["/opt/venv", "/opt/venv"] and "/opt/venv/bin" in stage.env()["PATH"]
    return STAGES[copy[0].removeprefix("--from=")]


def test_the_gateway_image_installs_the_runtime_lock_only_and_copies_only_the_gateway() -> None:
    build = _venv_source(GATEWAY)
    runs = " ".join(build.values("RUN"))
    assert "--require-hashes -r /tmp/requirements-runtime.lock" in runs
    assert [c[0] for c in build.copied()] == ["requirements-runtime.lock"]
    assert [c[0] for c in GATEWAY.copied() if not c[0].startswith("--")] == ["gateway", "deploy/gateway.example.yaml"]
    assert not GATEWAY.values("RUN") or "pip" not in " ".join(GATEWAY.values("RUN"))


def test_the_gateway_image_serves_checks_its_health_and_reads_a_mounted_config() -> None:
    settings = load_settings(ROOT / "deploy" / "gateway.example.yaml")
    ports = {int(p) for v in GATEWAY.values("EXPOSE") for p in v.split()}
    assert ports == {settings.server.port, settings.server.metrics_port}
    (health,) = GATEWAY.values("HEALTHCHECK")
    assert f"http://127.0.0.1:{settings.server.port}/v1/health" in health and " CMD " in f" {health}"
    cmd = json.loads(GATEWAY.values("CMD")[-1])
    assert cmd[:3] == ["python", "-m", "gateway"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    config = GATEWAY.env()["GATEWAY_CONFIG"]
    assert ["deploy/gateway.example.yaml", config] in GATEWAY.copied()


def test_the_testbed_image_holds_the_simulators_and_the_locust_runner() -> None:
    build = _venv_source(TESTBED)
    assert "--require-hashes -r /tmp/requirements-testbed.lock" in " ".join(build.values("RUN"))
    copied = {c[0] for c in TESTBED.copied()}
    assert {"gateway", "simulators", "experiments", "reports", "deploy"} <= copied
    assert json.loads(TESTBED.values("CMD")[-1])[:3] == ["python", "-m", "experiments"]


def test_every_copied_file_exists() -> None:
    for stage in STAGES.values():
        for copy in stage.copied():
            if not copy[0].startswith("--"):
                assert all((ROOT / src).exists() for src in copy[:-1]), copy
