"""End to end: a run directory in, report.md / postmortem.md / summary.json / charts out, byte-stable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reports.__main__ import main
from reports.build import build
from tests.reports.factory import outage_events, outage_run, outage_scenario, rec, write_run

OUTPUTS = (
    "summary.json",
    "report.md",
    "postmortem.md",
    "traffic.png",
    "latency.png",
    "providers.png",
    "breakers.png",
    "budget.png",
)


def _digests(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in OUTPUTS}


def test_build_writes_every_output_and_is_deterministic(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", outage_run(rate=5, seed=1), outage_scenario(), outage_events())
    build(run_dir)
    first = _digests(run_dir)
    build(run_dir)
    assert _digests(run_dir) == first
    assert (run_dir / "traffic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenario"]["name"] == "openai-outage"
    assert summary["resilience"]["breakers"]["openai"]["open_s"] == 55.0
    report = (run_dir / "report.md").read_text()
    for heading in (
        "## SLOs",
        "## Expectations",
        "## Burn-rate alerts",
        "## Resilience",
        "## Per consumer",
        "![traffic](traffic.png)",
    ):
        assert heading in report
    pm = (run_dir / "postmortem.md").read_text()
    for heading in (
        "## Summary",
        "## Impact",
        "## Root cause and trigger",
        "## Detection",
        "## Resolution",
        "## Timeline",
        "### What went well",
        "### What went wrong",
        "### Where we got lucky",
        "## Action items",
    ):
        assert heading in pm
    assert "`openai` breaker closed -> open" in pm


def test_no_postmortem_without_faults_or_broken_slo(tmp_path: Path) -> None:
    scenario = {"name": "baseline", "duration_s": 10, "slo": {"availability": 0.99}}
    run_dir = write_run(tmp_path / "run", [rec(f"r{i}", i, "ok") for i in range(10)], scenario)
    build(run_dir, charts=False)
    assert (run_dir / "report.md").exists() and not (run_dir / "postmortem.md").exists()


def test_locust_csvs_are_summarised(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [rec(f"r{i}", i, "ok") for i in range(10)], {"name": "x", "duration_s": 10})
    header = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,95%,99%,Requests/s\n"
    (run_dir / "locust_stats.csv").write_text(
        header + "POST,/v1/chat/completions,100,2,120,130,300,450,9.5\n,Aggregated,100,2,120,130,300,450,9.5\n"
    )
    (run_dir / "locust_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s,95%\n1,5,,Aggregated,4.0,200\n2,10,,Aggregated,9.0,350\n"
    )
    (run_dir / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\nPOST,/v1/chat/completions,HTTPError('503'),2\n"
        "POST,/v1/chat/completions,HTTPError('429'),5\n"
    )
    s = build(run_dir, charts=False).summary
    assert s["locust"] is not None
    assert [(f["error"], f["count"]) for f in s["locust"]["failures"]] == [
        ("HTTPError('429')", 5),
        ("HTTPError('503')", 2),
    ]
    assert s["locust"]["aggregated"]["requests"] == 100 and s["locust"]["aggregated"]["p95_ms"] == 300
    assert s["locust"]["history"] == {"samples": 2, "peak_users": 10.0, "peak_rps": 9.0, "peak_p95_ms": 350.0}
    report = (run_dir / "report.md").read_text()
    assert "## Load generator (locust)" in report and "| POST | /v1/chat/completions | HTTPError('429') | 5 |" in report


def test_the_locust_total_counts_requests_not_ttft_samples(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [rec(f"r{i}", i, "ok") for i in range(10)], {"name": "x", "duration_s": 10})
    header = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,95%,99%,Requests/s\n"
    (run_dir / "locust_stats.csv").write_text(
        header + "POST,chat,400,3,120,130,300,450,4.0\nPOST,chat stream,351,1,900,950,2000,2500,3.5\n"
        "TTFT,ttft,371,0,200,210,500,800,3.7\n,Aggregated,1122,4,300,400,1900,2400,11.2\n"
    )
    (run_dir / "locust_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s,95%\n1,5,,Aggregated,4.0,200\n2,10,,Aggregated,11.2,350\n"
    )
    s = build(run_dir, charts=False).summary
    assert s["locust"] is not None
    total = s["locust"]["aggregated"]
    assert (total["requests"], total["failures"], total["rps"]) == (751, 4, 7.5)
    assert total["p95_ms"] is None and "TTFT" in total["name"]
    assert "peak_rps" not in s["locust"]["history"]
    report = (run_dir / "report.md").read_text()
    assert "| Total (requests; TTFT samples excluded) | 751 |" in report and "1,122" not in report
    assert "Rows of type TTFT are not requests" in report


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path / "run", outage_run(rate=2, seed=4), outage_scenario(), outage_events())
    assert main([str(run_dir), "--no-charts"]) == 0
    assert "report.md" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
    bad = write_run(tmp_path / "bad", outage_run(rate=2, seed=4), outage_scenario(expectations=[{"kind": "x"}]))
    assert main([str(bad), "--no-charts"]) == 2
    assert "invalid expectations" in capsys.readouterr().err


def test_sixty_thousand_records_build(tmp_path: Path) -> None:
    # a 10-minute run at 100 requests/s; the time is printed by `pytest --durations`, not asserted
    records = outage_run(rate=100, duration=600, seed=9)
    run_dir = write_run(tmp_path / "run", records, outage_scenario(duration=600), outage_events())
    s = build(run_dir).summary
    assert s["run"]["records"] == len(records) > 55_000
    assert len(s["buckets"]) == 60


def test_the_cli_line_says_broken_in_report_md_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one line `python -m reports` prints agrees with report.md: a broken SLO is BROKEN, in percent."""
    records = [rec(f"r{i}", i, "ok" if i % 10 else "error") for i in range(100)]
    run_dir = write_run(tmp_path / "run", records, {"name": "x", "duration_s": 100, "slo": {"availability": 0.99}})
    assert main([str(run_dir), "--no-charts"]) == 0
    line = capsys.readouterr().out
    assert "availability 90.000 %" in line and "Availability (good / valid) BROKEN (1,000.0 % of budget)" in line
    assert (
        "| Availability (good / valid) | 99.000 % | 90.000 % | 10 / 100 | 1,000.0 % | **BROKEN** |"
        in (run_dir / "report.md").read_text()
    )
