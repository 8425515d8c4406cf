"""make slo-check: fails with a readable table on an overspent SLO budget, a regressed baseline or a replay error.

The replay is injected, so most tests use a summary computed from a small hand-made log; one test replays a
copy of the baseline scenario at a tenth of its length, changed so that it burns more SLO budget than it
declares, end to end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.scenario import SCENARIOS_DIR, ScenarioError
from experiments.slocheck import Replayer, main, run
from reports.load import from_lines
from reports.summary import compute
from reports.summary_models import Summary
from tests.reports.factory import T0, lines, outage_events, outage_run, outage_scenario


@pytest.fixture(scope="module")
def summary() -> Summary:
    run_data = from_lines(
        lines(outage_run(rate=5, seed=3)), lines(outage_events()), outage_scenario(), {"started_at": T0}
    )
    return compute(run_data).summary


def _failing(text: str) -> list[str]:
    """The table rows whose verdict column says FAIL (columns are separated by two spaces or more)."""
    return [line for line in text.splitlines() if re.search(r"\s{2}FAIL(\s{2}|$)", line)]


def _replayer(summaries: dict[str, Summary]) -> Replayer:
    def replay(name: str, run_dir: Path) -> Summary:
        if name not in summaries:
            raise ScenarioError(f"no scenario {name!r}")
        return summaries[name]

    return replay


def _run(tmp_path: Path, summaries: dict[str, Summary], names: list[str], **kw: Any) -> tuple[int, str]:
    return run(
        names,
        baselines_dir=tmp_path / "bl",
        work_dir=tmp_path / "w",
        replay=_replayer(summaries),
        log=lambda m: None,
        **kw,
    )


def test_write_then_check_passes(tmp_path: Path, summary: Summary) -> None:
    status, text = _run(tmp_path, {"openai-outage": summary}, ["openai-outage"], write=True)
    assert status == 0, text
    saved = json.loads((tmp_path / "bl" / "openai-outage.json").read_text())
    assert saved["figures"]["availability"] == summary["figures"]["availability"]
    status, text = _run(tmp_path, {"openai-outage": summary}, ["openai-outage"])
    assert status == 0 and text.splitlines()[-1] == "slo-check: PASS"


def test_a_tampered_baseline_fails_with_a_readable_table(tmp_path: Path, summary: Summary) -> None:
    _run(tmp_path, {"openai-outage": summary}, ["openai-outage"], write=True)
    path = tmp_path / "bl" / "openai-outage.json"
    base = json.loads(path.read_text())
    calls = summary["figures"]["upstream_calls_per_request"]
    assert calls is not None
    base["figures"]["upstream_calls_per_request"] = calls - 0.3
    path.write_text(json.dumps(base))
    status, text = _run(tmp_path, {"openai-outage": summary}, ["openai-outage"])
    assert status == 1
    header, _rule, *body = text.splitlines()
    assert header.split() == ["scenario", "gate", "figure", "now", "limit", "verdict", "note"]
    (failing,) = _failing("\n".join(body))
    assert failing.split()[:3] == ["openai-outage", "regression", "upstream_calls_per_request"]
    assert "worse than baseline by 0.3" in failing
    assert "replay: make experiment SCENARIO=openai-outage" in text
    assert text.splitlines()[-1] == "slo-check: FAIL (1 failing check(s))"


def test_a_scenario_that_cannot_replay_fails_and_orphan_baselines_are_named(tmp_path: Path, summary: Summary) -> None:
    _run(tmp_path, {"gone": summary}, ["gone"], write=True)
    status, text = _run(tmp_path, {}, ["missing"], every_scenario=True)
    assert status == 1
    assert any(line.split()[:2] == ["missing", "replay"] and "FAIL" in line for line in text.splitlines())
    assert "baselines without a scenario (delete them?): gone" in text


def test_write_with_an_overspent_budget_still_fails(tmp_path: Path, summary: Summary) -> None:
    broken = json.loads(json.dumps(summary))
    broken["slo_gate"]["budgets"][0] |= {"used_pct": 900.0, "held": False}
    status, text = _run(tmp_path, {"openai-outage": broken}, ["openai-outage"], write=True)
    assert status == 1 and "burned more than allowed" in text and "not baselined" in text


def test_rebaseline_of_one_scenario_rewrites_only_its_baseline(tmp_path: Path, summary: Summary) -> None:
    both = {"a": summary, "b": summary}
    _run(tmp_path, both, ["a", "b"], write=True)
    other = tmp_path / "bl" / "b.json"
    other.write_text(other.read_text().replace('"schema": 2', '"schema": 2 '))  # marked: any rewrite would undo it
    moved = json.loads(json.dumps(summary))
    moved["figures"]["upstream_calls_per_request"] += 0.3
    status, _text = _run(tmp_path, {"a": moved, "b": summary}, ["a"], write=True)
    assert status == 0
    saved = json.loads((tmp_path / "bl" / "a.json").read_text())
    assert saved["figures"]["upstream_calls_per_request"] == moved["figures"]["upstream_calls_per_request"]
    assert '"schema": 2 ' in other.read_text()


def test_a_new_scenario_without_a_baseline_is_reported_as_new_with_the_command(
    tmp_path: Path, summary: Summary
) -> None:
    status, text = _run(tmp_path, {"fresh": summary}, ["fresh"])
    assert status == 0, text
    assert "new: fresh has no baseline yet; record one with `make rebaseline SCENARIO=fresh`" in text


def test_end_to_end_a_change_that_burns_more_budget_than_declared_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load((SCENARIOS_DIR / "baseline.yaml").read_text())
    raw["expectations"] = []
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "baseline.yaml").write_text(yaml.safe_dump(raw))
    args = ["--scenarios", str(scenarios), "--baselines", str(tmp_path / "bl"), "--scale", "0.1", "--jobs", "1"]
    assert main([*args, "--write", "--keep", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "runs" / "baseline" / "summary.json").exists()
    capsys.readouterr()
    # the change: every upstream answers 503 for the last half of the run
    for u in raw["upstreams"]:
        u["timeline"] = [{"type": "outage", "start_s": 60, "mode": 503}]
    (scenarios / "baseline.yaml").write_text(yaml.safe_dump(raw))
    assert main(args) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if ": slo-budget: Availability" in x]
    assert line.strip().startswith("baseline: slo-budget: Availability (good / valid): error budget used = ")
    assert "(limit <= 100.0 %)" in line and line.endswith("replay: make experiment SCENARIO=baseline")
    assert Path(tmp_path / "bl" / "baseline.json").read_text().endswith("\n")
