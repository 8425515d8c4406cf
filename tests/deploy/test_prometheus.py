"""The SLO rules: generated file up to date, valid, and their promtool unit tests pass (alerts fire and stay
quiet as designed); the Prometheus config for docker-compose is valid."""

from __future__ import annotations

import subprocess
import sys

import yaml

from .conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "slo-rules.yaml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)


def test_rules_file_is_generated_from_the_script() -> None:
    out = _run(sys.executable, "deploy/prometheus/generate_rules.py", "--check")
    assert out.returncode == 0, out.stderr


def test_sloth_names_and_both_slos_present() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    records = {(r["record"], r["labels"]["sloth_slo"]) for g in groups for r in g["rules"] if "record" in r}
    for slo in ("availability", "latency"):
        for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert (f"slo:sli_error:ratio_rate{w}", slo) in records
        for name in (
            "slo:objective:ratio",
            "slo:error_budget:ratio",
            "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio",
            "slo:period_error_budget_remaining:ratio",
        ):
            assert (name, slo) in records
    alerts = {r["alert"]: r["labels"]["severity"] for g in groups for r in g["rules"] if "alert" in r}
    assert alerts == {
        "FaultlineAvailabilityBudgetBurnPage": "page",
        "FaultlineAvailabilityBudgetBurnTicket": "ticket",
        "FaultlineLatencyBudgetBurnPage": "page",
        "FaultlineLatencyBudgetBurnTicket": "ticket",
    }


def test_promtool_check_rules(promtool: str) -> None:
    out = _run(promtool, "check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rule_unit_tests(promtool: str) -> None:
    out = _run(promtool, "test", "rules", "tests/deploy/slo_rules_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_firing_and_quiet_cases() -> None:
    tests = yaml.safe_load((ROOT / "tests" / "deploy" / "slo_rules_test.yaml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert firing == alerts
    assert quiet == alerts


def test_promtool_check_config(promtool: str) -> None:
    out = _run(promtool, "check", "config", "deploy/prometheus/prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
