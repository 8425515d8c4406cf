"""slo-check: passes on an unchanged run, fails on a broken budget, a broken expectation, a regression beyond
tolerance, a vanished figure or a missing baseline."""

from __future__ import annotations

import copy

import pytest

from reports.load import from_lines
from reports.slocheck import check_slo, load_baselines, main, write_baseline
from reports.summary import compute
from tests.reports.factory import T0, lines, outage_events, outage_run, outage_scenario, write_run


@pytest.fixture(scope="module")
def summary():
    run = from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), outage_scenario(), {"started_at": T0})
    return compute(run).summary


def _baseline(tmp_path, summary):
    write_baseline("openai-outage", summary, tmp_path)
    return load_baselines(tmp_path, ["openai-outage", "absent"])


def test_unchanged_run_passes(tmp_path, summary):
    baselines = _baseline(tmp_path, summary)
    assert set(baselines) == {"openai-outage"}
    result = check_slo({"openai-outage": summary}, baselines)
    assert result.passed, result.table()
    assert result.table().endswith("slo-check: PASS")


def test_broken_budget_fails(tmp_path, summary):
    baselines = _baseline(tmp_path, summary)
    broken = copy.deepcopy(summary)
    broken["ci_budgets"][0] |= {"limit": 0.9999, "held": False}  # min_availability
    result = check_slo({"openai-outage": broken}, baselines)
    assert not result.passed
    (row,) = result.failures
    assert row.check == "availability" and row.budget == ">= 0.9999" and "CI budget broken" in row.note
    assert "FAIL" in result.table()


def test_budget_broken_by_the_computation_itself():
    scenario = outage_scenario()
    scenario["ci_budgets"]["min_availability"] = 0.99999
    run = from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), scenario, {"started_at": T0})
    s = compute(run).summary
    result = check_slo({"openai-outage": s}, {}, require_baseline=False)
    assert [r.check for r in result.failures] == ["availability"]


def test_regression_beyond_tolerance_fails_within_tolerance_passes(tmp_path, summary):
    baselines = _baseline(tmp_path, summary)
    slightly = copy.deepcopy(summary)
    slightly["figures"]["upstream_calls_per_request"] += 0.04
    assert check_slo({"openai-outage": slightly}, baselines).passed
    worse = copy.deepcopy(summary)
    worse["figures"]["upstream_calls_per_request"] += 0.2
    (row,) = check_slo({"openai-outage": worse}, baselines).failures
    assert row.check == "upstream_calls_per_request" and "worse than baseline" in row.note
    better = copy.deepcopy(summary)
    better["figures"]["availability"] = 1.0
    assert check_slo({"openai-outage": better}, baselines).passed


def test_tolerance_override_from_ci_budgets(tmp_path, summary):
    baselines = _baseline(tmp_path, summary)
    worse = copy.deepcopy(summary)
    worse["figures"]["upstream_calls_per_request"] += 0.2
    worse["ci_tolerances"] = {"upstream_calls_per_request": 0.5}
    assert check_slo({"openai-outage": worse}, baselines).passed


def test_broken_expectation_and_missing_baseline_fail(summary):
    broken = copy.deepcopy(summary)
    broken["expectations"][0]["held"] = False
    result = check_slo({"openai-outage": broken}, {})
    checks = [r.check for r in result.failures]
    assert checks[0] == "baseline" and "expectations" in checks
    assert any(c.startswith("expectation: ") for c in checks)
    assert not check_slo({"openai-outage": summary}, {}, require_baseline=False).failures


def test_vanished_figure_fails(tmp_path, summary):
    baselines = _baseline(tmp_path, summary)
    baselines["openai-outage"]["figures"]["time_to_detect_s"] = 3.0
    (row,) = check_slo({"openai-outage": summary}, baselines).failures
    assert row.check == "time_to_detect_s" and "no longer fires" in row.note


def test_write_baseline_is_stable(tmp_path, summary):
    a = write_baseline("x", summary, tmp_path / "a").read_bytes()
    b = write_baseline("x", summary, tmp_path / "b").read_bytes()
    assert a == b and a.endswith(b"\n")


def test_cli_writes_then_checks(tmp_path, capsys):
    from reports.build import build

    run_dir = write_run(tmp_path / "run", outage_run(rate=5, seed=2), outage_scenario(), outage_events())
    build(run_dir, charts=False)
    bl = tmp_path / "baselines"
    assert main([str(run_dir), "--baselines", str(bl)]) == 1  # no baseline yet
    assert main([str(run_dir), "--baselines", str(bl), "--write"]) == 0
    assert main([str(run_dir), "--baselines", str(bl)]) == 0
    assert "slo-check: PASS" in capsys.readouterr().out
