"""docs/DESIGN.md quotes figures from the repository's own data; they must stay true to it."""

from __future__ import annotations

import json
import re

import yaml

from .conftest import ROOT

DESIGN = (ROOT / "docs" / "DESIGN.md").read_text()


def _leaves(node: object, depth: int = 0) -> list[int]:
    if isinstance(node, dict):
        return [d for v in node.values() for d in _leaves(v, depth + 1)]
    if isinstance(node, list):
        return [d for v in node for d in _leaves(v, depth + 1)]
    return [depth]


def test_the_example_configuration_figures() -> None:
    leaves = _leaves(yaml.safe_load((ROOT / "deploy" / "gateway.example.yaml").read_text()))
    claim = re.search(r"The example file holds more than (\d+) values nested up to (\d+) levels", DESIGN)
    assert claim, "docs/DESIGN.md no longer sizes the example configuration"
    assert len(leaves) > int(claim.group(1))
    assert max(leaves) == int(claim.group(2))


def test_the_redis_outage_figures_are_the_baselines() -> None:
    baseline = json.loads((ROOT / "experiments" / "baselines" / "redis-outage.json").read_text())["figures"]
    scenario = yaml.safe_load((ROOT / "experiments" / "scenarios" / "redis-outage.yaml").read_text())
    assert scenario["gateway"]["quota"]["failure_policy"] == "open"
    quoted = re.search(r"availability at ([\d.]+) and end-to-end p99 at ([\d.]+) s", DESIGN)
    assert quoted is not None
    assert float(quoted[1]) == baseline["availability"]
    assert float(quoted[2]) == round(baseline["e2e_p99_s"], 1)
    assert f"{scenario['duration_s']} s run" in DESIGN.replace("\n", " ")
