"""requirements-runtime.lock is enough to run the gateway, and brings nothing of the testbed or the tests.

The virtualenv is .venv-runtime, built from that lock alone by ``make tools``. The gateway runs from a directory
holding what the production image holds (``gateway/`` and ``deploy/``), never from the repository, so nothing of
the testbed can be imported from the working directory either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, stop, wait_http

from .conftest import ROOT

PYTHON = ROOT / ".venv-runtime" / "bin" / "python"


@pytest.fixture
def image_dir(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of what deploy/Dockerfile copies into the gateway image, and an environment without the repository."""
    if not PYTHON.is_file():
        pytest.fail(f"{PYTHON} is missing: run `make tools` (which `make test` runs first)")
    shutil.copytree(ROOT / "gateway", tmp_path / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "REDIS_URL"))}
    yield tmp_path, env | {"PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _python(image: Path, env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-c", code], cwd=image, env=env, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize(
    "module", ["simulators", "experiments", "reports", "pytest", "locust", "polars", "matplotlib", "httpx"]
)
def test_the_testbed_and_the_tests_cannot_be_imported(image_dir: tuple[Path, dict[str, str]], module: str) -> None:
    out = _python(*image_dir, f"import {module}")
    assert out.returncode == 1 and f"No module named '{module}'" in out.stderr, out.stderr


def test_every_gateway_module_imports(image_dir: tuple[Path, dict[str, str]]) -> None:
    code = (
        "import importlib, pkgutil, gateway\n"
        "mods = pkgutil.walk_packages(gateway.__path__, 'gateway.')\n"
        "names = [m.name for m in mods if m.name != 'gateway.__main__']\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    out = _python(*image_dir, code)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 40


def _start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)


@pytest.mark.processes
async def test_the_gateway_starts_with_the_example_config_and_answers_health(
    image_dir: tuple[Path, dict[str, str]],
) -> None:
    image, env = image_dir
    config = image / "deploy" / "gateway.example.yaml"
    # the example as shipped, but for its metrics port: a fixed 9090 could be taken on a shared machine
    config.write_text(config.read_text().replace("metrics_port: 9090 ", f"metrics_port: {free_port()} ", 1))
    port = free_port()
    cmd = [str(PYTHON), "-m", "gateway", "--config", "deploy/gateway.example.yaml", "--port", str(port)]
    log = image / "stderr.log"
    proc = _start(cmd, image, env, log)
    try:
        await wait_http(f"http://127.0.0.1:{port}/v1/health")
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{port}/v1/health")
        assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
        assert proc.poll() is None
    finally:
        stop([proc])
    assert "Traceback" not in log.read_text()
