"""Scenarios on disk: list them, find one by name or path, load and validate one (YAML; the schema of
experiments/scenario.py; references; simulator profiles; whether the gateway overlay resolves:
experiments/resolve.py). Every problem is reported, each by its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from experiments.resolve import check_resolvable, profile_of
from experiments.scenario import SCENARIOS_DIR, Scenario, ScenarioError, UpstreamSpec
from experiments.validate import profile_problem_lines, reference_problems, schema_problems
from reports.expectations import EVALUATORS as EXPECTATION_KINDS
from simulators.profile import ProfileError


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def scenario_path(ref: str | Path, directory: Path = SCENARIOS_DIR) -> Path:
    p = Path(ref)
    return p if p.suffix in (".yaml", ".yml") else directory / f"{ref}.yaml"


def _profile_problems(raw: Any) -> list[str]:
    """Each upstream's simulator profile, checked on its own so every bad one is named."""
    out = []
    for i, u in enumerate(raw.get("upstreams") if isinstance(raw.get("upstreams"), list) else []):
        try:
            spec = UpstreamSpec.model_validate(u)
        except ValidationError:
            continue  # its fields are reported by the schema check
        try:
            profile_of(spec)
        except ProfileError as exc:
            out += profile_problem_lines(i, str(exc))
    return out


def parse_scenario(raw: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping; :class:`ScenarioError` lists every problem, each by its path."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping")
    problems: list[str] = []
    sc: Scenario | None = None
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems += schema_problems(exc, {"expectations": set(EXPECTATION_KINDS)})
    problems += reference_problems(raw) + _profile_problems(raw)
    if sc is not None and not problems:  # the gateway overlay needs the whole scenario
        try:
            check_resolvable(sc)
        except ValueError as exc:
            problems.append(f"gateway: {str(exc).strip()}")
    if problems or sc is None:
        n = len(problems)
        raise ScenarioError(
            f"{source}: invalid scenario ({n} problem{'s' if n != 1 else ''}):\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    return sc


def load_scenario(ref: str | Path, directory: Path = SCENARIOS_DIR) -> Scenario:
    """A scenario by name (``scenarios/<name>.yaml``) or by path."""
    path = scenario_path(ref, directory)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError:
        known = ", ".join(list_scenarios(directory))
        raise ScenarioError(f"no scenario {str(ref)!r}; known: {known}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse_scenario(raw, source=str(path))
