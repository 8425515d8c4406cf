"""SLIs on hand-made logs: availability classes, percentile method, error budget, per-group tables."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reports.load import RunData, from_lines
from reports.slo import SloGate, SloSpec, group_table, overall_table, slo_results
from tests.reports.factory import T0, lines, rec


def _run(records: list[dict[str, Any]]) -> RunData:
    return from_lines(lines(records), meta={"started_at": T0})


def mixed() -> list[dict[str, Any]]:
    out = [rec(f"ok{i}", i, "ok", ttft=float(i + 1), e2e=float(i + 2)) for i in range(10)]
    out += [rec("e1", 1, "error"), rec("e2", 2, "error"), rec("s1", 3, "shed", provider=None)]
    out += [rec(f"q{i}", 4, "quota_rejected", provider=None, consumer="greedy") for i in range(3)]
    out += [rec("c1", 5, "client_error", provider=None), rec("c2", 5, "client_error", provider=None)]
    out += [rec("x1", 6, "cancelled")]
    return out


def test_availability_counts_shed_as_failure_and_excludes_quota_client_error_and_cancelled() -> None:
    row = overall_table(_run(mixed()).requests).row(0, named=True)
    assert (row["requests"], row["valid"], row["good"], row["bad"]) == (19, 13, 10, 3)
    assert row["shed"] == 1 and row["quota_rejected"] == 3 and row["client_error"] == 2
    assert row["availability"] == pytest.approx(10 / 13)


def test_error_budget_consumed_and_verdict() -> None:
    rows = {r["slo"]: r for r in slo_results(_run(mixed()).requests, SloSpec(availability=0.99))}
    a = rows["availability"]
    assert a["events"] == 13 and a["bad_events"] == 3
    assert a["error_budget_consumed"] == pytest.approx((3 / 13) / 0.01)
    assert a["verdict"] == "broken"
    assert slo_results(_run(mixed()).requests, SloSpec(availability=0.75))[0]["verdict"] == "met"


def test_percentiles_use_linear_interpolation_over_good_requests() -> None:
    # TTFTs 1..10 s on good streamed requests; failures and non-streamed requests are not in the TTFT population.
    records = [*mixed(), rec("ns", 7, "ok", stream=False, ttft=100.0, e2e=100.0)]
    row = overall_table(_run(records).requests).row(0, named=True)
    assert row["ttft_p50"] == pytest.approx(5.5)
    assert row["ttft_p95"] == pytest.approx(1 + 0.95 * 9)
    assert row["ttft_p99"] == pytest.approx(1 + 0.99 * 9)
    # e2e over all 11 good requests: 2..11 and 100
    assert row["e2e_p50"] == pytest.approx(7.0)


def test_latency_slo_as_ratio_budget() -> None:
    spec = SloSpec(availability=0.99, ttft_p95_s=8.0)
    rows = {r["slo"]: r for r in slo_results(_run(mixed()).requests, spec)}
    t = rows["ttft_p95"]
    assert t["events"] == 10 and t["bad_events"] == 2  # TTFT 9 and 10 s exceed 8 s
    assert t["error_budget_consumed"] == pytest.approx(0.2 / 0.05)
    assert t["achieved"] == pytest.approx(9.55) and t["verdict"] == "broken"


def test_group_table_per_consumer() -> None:
    t = {r["consumer"]: r for r in group_table(_run(mixed()).requests, "consumer").to_dicts()}
    assert t["greedy"]["quota_rejected"] == 3 and t["greedy"]["availability"] is None  # nothing valid
    assert t["alice"]["valid"] == 13


def test_specs_reject_bad_values_with_field_names() -> None:
    with pytest.raises(ValidationError, match="availability"):
        SloSpec(availability=1.5)
    with pytest.raises(ValidationError, match="max_budget"):
        SloGate.model_validate({"max_budget": 1})


def test_a_gate_allowing_an_slo_to_break_must_say_why() -> None:
    with pytest.raises(ValidationError, match="say why in `reason`"):
        SloGate.model_validate({"allowed_burn_pct": {"availability": 900}})
    with pytest.raises(ValidationError, match="allowed_burn_pct"):
        SloGate.model_validate({"allowed_burn_pct": {"latency": 50}})
    gate = SloGate.model_validate({"allowed_burn_pct": {"availability": 900}, "reason": "the provider is down"})
    assert (gate.allowed("availability"), gate.allowed("ttft_p95")) == (900, 100)
