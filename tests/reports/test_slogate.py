"""The SLO gate: (a) SLO budgets against what the scenario allows, (b) expectations, (c) regressions against the
baseline; every row names its gate, a breach names scenario, figure, limit and the replay command, and a scenario
without a baseline is new, not failed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from reports.load import from_lines
from reports.slogate import check_slo, load_baselines, main, write_baseline
from reports.summary import compute
from reports.summary_models import Summary
from tests.reports.factory import T0, lines, outage_events, outage_run, outage_scenario, write_run


@pytest.fixture(scope="module")
def summary() -> Summary:
    run = from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), outage_scenario(), {"started_at": T0})
    return compute(run).summary


def _baseline(tmp_path: Path, summary: Summary) -> dict[str, dict[str, Any]]:
    write_baseline("openai-outage", summary, tmp_path)
    return load_baselines(tmp_path, ["openai-outage", "absent"])


def test_unchanged_run_passes_and_every_row_names_its_gate(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    assert set(baselines) == {"openai-outage"}
    result = check_slo({"openai-outage": summary}, baselines)
    assert result.passed, result.table()
    assert result.table().endswith("slo-check: PASS")
    assert {r.gate for r in result.rows} == {"slo-budget", "expectation", "regression"}
    budget = [r for r in result.rows if r.gate == "slo-budget"]
    assert budget[0].figure == "Availability (good / valid): error budget used"
    assert budget[0].limit == "<= 500.0 %" and budget[0].now.endswith(" %")


def _burn(summary: Summary, used_pct: float) -> Summary:
    """The summary as if the run had used ``used_pct`` of its availability budget (as the build computes it)."""
    s = copy.deepcopy(summary)
    b = s["slo_gate"]["budgets"][0]
    b |= {"used_pct": used_pct, "held": used_pct <= b["allowed_pct"]}
    return s


def test_burning_more_budget_than_declared_fails_with_a_readable_line(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    result = check_slo({"openai-outage": _burn(summary, 612.5)}, baselines)
    assert not result.passed
    budget = [r for r in result.failures if r.gate == "slo-budget"]
    assert len(budget) == 1
    (line,) = [b for b in result.breaches() if ": slo-budget: " in b]
    assert line == (
        "openai-outage: slo-budget: Availability (good / valid): error budget used = 612.5 % (limit <= 500.0 %); "
        "burned more than allowed by 112.5 percentage points (allowed to break: a 60 s outage of the main "
        "provider); replay: make experiment SCENARIO=openai-outage"
    )
    assert "breaches:" in result.table() and result.table().splitlines()[-1].startswith("slo-check: FAIL")


def test_the_budget_gate_is_computed_by_the_build_from_the_scenario() -> None:
    scenario = outage_scenario()
    scenario["slo_gate"] = {}  # nothing declared: every SLO must hold, 100 % of its budget
    run = from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), scenario, {"started_at": T0})
    s = compute(run).summary
    (avail,) = [b for b in s["slo_gate"]["budgets"] if b["slo"] == "availability"]
    consumed = s["slos"][0]["error_budget_consumed"]
    assert avail["used_pct"] is not None and consumed is not None
    assert avail["allowed_pct"] == 100 and avail["used_pct"] == pytest.approx(100 * consumed)
    assert avail["used_pct"] > 0
    scenario["slo_gate"] = {"allowed_burn_pct": {"availability": avail["used_pct"] / 2}, "reason": "a test of it"}
    halved = compute(from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), scenario, {})).summary
    result = check_slo({"openai-outage": halved}, {})
    assert [r.gate for r in result.failures] == ["slo-budget"]


def test_regression_beyond_tolerance_fails_within_tolerance_passes(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    slightly = copy.deepcopy(summary)
    assert slightly["figures"]["upstream_calls_per_request"] is not None
    slightly["figures"]["upstream_calls_per_request"] += 0.04
    assert check_slo({"openai-outage": slightly}, baselines).passed
    worse = copy.deepcopy(summary)
    assert worse["figures"]["upstream_calls_per_request"] is not None
    worse["figures"]["upstream_calls_per_request"] += 0.2
    (row,) = check_slo({"openai-outage": worse}, baselines).failures
    assert (row.gate, row.figure) == ("regression", "upstream_calls_per_request")
    assert "worse than baseline by 0.2" in row.note and row.limit.startswith("<= ")
    better = copy.deepcopy(summary)
    better["figures"]["availability"] = 1.0
    assert check_slo({"openai-outage": better}, baselines).passed


def test_budget_regression_is_in_percent_of_budget(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    worse = copy.deepcopy(summary)
    assert worse["figures"]["availability_budget_used_pct"] is not None
    worse["figures"]["availability_budget_used_pct"] += 50
    (row,) = check_slo({"openai-outage": worse}, baselines).failures
    assert row.figure == "availability_budget_used_pct" and row.now.endswith(" %") and "%" in row.limit


def test_tolerance_override_from_the_scenario(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    worse = copy.deepcopy(summary)
    assert worse["figures"]["upstream_calls_per_request"] is not None
    worse["figures"]["upstream_calls_per_request"] += 0.2
    worse["slo_gate"]["tolerances"] = {"upstream_calls_per_request": 0.5}
    assert check_slo({"openai-outage": worse}, baselines).passed


def test_broken_expectation_fails_and_a_missing_baseline_is_new(summary: Summary) -> None:
    new = check_slo({"openai-outage": summary}, {})
    assert new.passed
    (row,) = [r for r in new.rows if r.gate == "regression"]
    assert row.verdict == "new" and "make rebaseline SCENARIO=openai-outage" in row.note
    assert "new: openai-outage has no baseline yet" in new.table()
    broken = copy.deepcopy(summary)
    broken["expectations"][0]["held"] = False
    (row,) = check_slo({"openai-outage": broken}, {}).failures
    assert row.gate == "expectation" and row.note.startswith("broken: ")


def test_vanished_figure_fails(tmp_path: Path, summary: Summary) -> None:
    baselines = _baseline(tmp_path, summary)
    baselines["openai-outage"]["figures"]["time_to_detect_s"] = 3.0
    (row,) = check_slo({"openai-outage": summary}, baselines).failures
    assert row.figure == "time_to_detect_s" and "no longer fires" in row.note


def test_write_baseline_is_stable(tmp_path: Path, summary: Summary) -> None:
    a = write_baseline("x", summary, tmp_path / "a").read_bytes()
    b = write_baseline("x", summary, tmp_path / "b").read_bytes()
    assert a == b and a.endswith(b"\n")


def test_cli_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reports.build import build

    run_dir = write_run(tmp_path / "run", outage_run(rate=5, seed=2), outage_scenario(), outage_events())
    build(run_dir, charts=False)
    bl = tmp_path / "baselines"
    assert main([str(run_dir), "--baselines", str(bl)]) == 0  # no baseline yet: new, not a failure
    assert "has no baseline yet" in capsys.readouterr().out
    assert main([str(run_dir), "--baselines", str(bl), "--write"]) == 0
    assert main([str(run_dir), "--baselines", str(bl)]) == 0
    out = capsys.readouterr().out
    assert "slo-check: PASS" in out and " new " not in out
