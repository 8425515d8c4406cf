"""Compute every figure of a run: the ``summary.json`` dict plus the frames the charts need."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import polars as pl

from reports.alerts import evaluate_alerts
from reports.expectations import Context, evaluate, parse_expectations
from reports.faults import fault_figures
from reports.load import RunData
from reports.resilience import breaker_intervals, resilience
from reports.slo import (
    QUANTILE_METHOD,
    VALID,
    SloGate,
    SloSpec,
    group_table,
    overall_table,
    sli_events,
    slis,
    slo_results,
)
from reports.summary_models import (
    AlertBlock,
    FaultWindows,
    Figures,
    GateBudget,
    Impact,
    Phase,
    SloGateResult,
    SloRow,
    Summary,
)
from reports.timeseries import bucket_series, bucket_width, provider_share

SUMMARY_SCHEMA = 1


@dataclass
class Computed:
    summary: Summary
    buckets: pl.DataFrame
    shares: pl.DataFrame
    intervals: pl.DataFrame
    spec: SloSpec
    run: RunData


def clean(value: Any, digits: int = 6) -> Any:
    """JSON-ready and stable: floats rounded, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, digits)
    if isinstance(value, dict):
        return {str(k): clean(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v, digits) for v in value]
    return value


def _faults(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    faults = [
        {**f, "start_s": float(f["start_s"]), "end_s": _maybe_float(f.get("end_s"))}
        for f in scenario.get("faults") or []
        if isinstance(f, dict) and f.get("start_s") is not None
    ]
    return sorted(faults, key=lambda f: f["start_s"])


def _phases(scenario: dict[str, Any]) -> list[Phase]:
    """The load phases ``{name, start_s, end_s}`` of the scenario (empty when it has none)."""
    phases = (scenario.get("load") or {}).get("phases") or []
    return [
        {"name": str(p.get("name", "")), "start_s": float(p["start_s"]), "end_s": float(p["end_s"])}
        for p in phases
        if isinstance(p, dict) and p.get("start_s") is not None and p.get("end_s") is not None
    ]


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _impact(requests: pl.DataFrame, buckets: pl.DataFrame, spec: SloSpec, fault_start: float | None) -> Impact:
    bad = requests.filter(VALID & (pl.col("outcome") != "ok"))
    consumers = sorted(c for c in bad["consumer"].unique().to_list() if c is not None)
    recovered = None
    if fault_start is not None:
        after = buckets.filter(pl.col("t_start") >= fault_start - 1e-9).filter(pl.col("availability").is_not_null())
        below = after.filter(pl.col("availability") < spec.availability)
        if below.height == 0:
            recovered = None  # never degraded below target after the fault
        else:
            later = after.filter(pl.col("t_start") > below["t_start"].max())
            # Ignored on the next line: polars types min()/max() as any literal
            recovered = float(later["t_start"].min()) if later.height else None  # type: ignore[arg-type]
    return {
        "failed_requests": bad.height,
        "failed_by_outcome": {k: int(v) for k, v in bad.group_by("outcome").len().sort("outcome").iter_rows()},
        "consumers_affected": consumers,
        "first_failure_at_s": _maybe_float(bad["t_end"].min()) if bad.height else None,
        "last_failure_at_s": _maybe_float(bad["t_end"].max()) if bad.height else None,
        "recovered_at_s": recovered,
    }


def _fault_split(requests: pl.DataFrame, faults: list[dict[str, Any]], end_s: float) -> FaultWindows | None:
    """The overall SLI row for requests arriving inside any fault window ``[start_s, end_s)`` and outside."""
    if not faults:
        return None
    inside = pl.lit(False)
    for f in faults:
        end = f["end_s"] if f["end_s"] is not None else end_s
        inside = inside | ((pl.col("t") >= f["start_s"]) & (pl.col("t") < end))
    return {
        "during_faults": overall_table(requests.filter(inside)).row(0, named=True),
        "outside_faults": overall_table(requests.filter(~inside)).row(0, named=True),
    }


def _slo_gate(gate: SloGate, slo_rows: list[SloRow]) -> SloGateResult:
    """Gate (a) of ``make slo-check``: each SLO's error budget used against what the scenario allows it."""
    budgets: list[GateBudget] = []
    for r in slo_rows:
        used, allowed = r["error_budget_used_pct"], gate.allowed(str(r["slo"]))
        budgets.append(
            {
                "slo": r["slo"],
                "title": r["title"],
                "used_pct": used,
                "allowed_pct": allowed,
                "held": used is None or used <= allowed + 1e-9,
            }
        )
    return {"budgets": budgets, "reason": gate.reason, "tolerances": gate.tolerances}


def compute(run: RunData, bucket_s: float | None = None) -> Computed:
    sc = run.scenario
    spec = SloSpec.model_validate(sc.get("slo") or {})
    gate = SloGate.model_validate(sc.get("slo_gate") or {})
    expectations = parse_expectations(sc.get("expectations") or [])
    req = run.requests
    # Ignored on the next line: polars types min()/max() as any literal
    last_end = float(req["t_end"].max()) if req.height else 0.0  # type: ignore[arg-type]
    duration = float(sc.get("duration_s") or 0) or max(last_end, 1.0)
    end_s = max(duration, last_end)
    bucket_s = bucket_s or bucket_width(duration)
    faults = _faults(sc)
    fault_start = faults[0]["start_s"] if faults else None

    buckets = bucket_series(req, spec, duration, bucket_s, run.t0, run.attempts)
    shares = provider_share(req, duration, bucket_s)
    intervals = breaker_intervals(run.transitions, end_s)
    slo_rows = slo_results(req, spec)
    alerts: dict[str, AlertBlock] = {
        sli.name: evaluate_alerts(sli_events(req, sli), sli.objective, spec, duration, end_s, fault_start)
        for sli in slis(spec)
    }
    res = resilience(req, run.attempts, run.transitions, end_s)
    ctx = Context(req, run.attempts, run.transitions, intervals, slo_rows, alerts, fault_start)
    results = evaluate(expectations, ctx)
    overall = overall_table(req).row(0, named=True)

    by_slo = {r["slo"]: r for r in slo_rows}
    ttds = [r["time_to_detect_s"] for r in alerts["availability"]["rules"] if r["time_to_detect_s"] is not None]
    figures: Figures = {
        "requests": req.height,
        "availability": by_slo["availability"]["good_ratio"],
        "availability_budget_used_pct": by_slo["availability"]["error_budget_used_pct"],
        "ttft_p95_s": overall["ttft_p95"],
        "e2e_p99_s": overall["e2e_p99"],
        "ttft_p95_budget_used_pct": _budget_used(by_slo, "ttft_p95"),
        "e2e_p99_budget_used_pct": _budget_used(by_slo, "e2e_p99"),
        "upstream_calls_per_request": res["upstream_calls_per_request"],
        "failover_share": res["failover_share"],
        "time_to_detect_s": min(ttds) if ttds else None,
        "shed": res["shed"],
        "quota_rejected": res["quota_rejected"],
        "cost_usd": overall["cost_usd"],
    }
    summary: Summary = {
        "schema": SUMMARY_SCHEMA,
        "scenario": {
            "name": sc.get("name") or run.meta.get("scenario") or "unnamed",
            "description": sc.get("description") or "",
            "duration_s": duration,
            "faults": faults,
            "phases": _phases(sc),
            "seed": sc.get("seed"),
        },
        "run": {
            "run_id": run.meta.get("run_id") or _first(req, "run_id"),
            "mode": run.meta.get("mode"),
            "workers": run.meta.get("workers"),
            "t0": run.t0,
            "records": req.height,
            "end_s": end_s,
            "bucket_s": bucket_s,
            "quantile_method": f"{QUANTILE_METHOD} (Hyndman-Fan type 7)",
        },
        "slo": spec.model_dump(),
        "figures": figures,
        "slos": slo_rows,
        "overall": overall,
        "by_consumer": group_table(req, "consumer").to_dicts(),
        "by_provider": group_table(req, "provider").to_dicts(),
        "by_model": group_table(req, "model").to_dicts(),
        "alerts": alerts,
        "resilience": res,
        "impact": _impact(req, buckets, spec, fault_start),
        "fault_windows": _fault_split(req, faults, end_s),
        "fault_impact": fault_figures(faults, req, run.transitions, alerts["availability"]["rules"], duration),
        "expectations": results,
        "slo_gate": _slo_gate(gate, slo_rows),
        "buckets": buckets.drop("bucket_start").to_dicts(),
        "locust": run.meta.get("locust"),
        "metrics": run.meta.get("metrics"),
    }
    # clean() keeps every key and every level of nesting: only its numbers change (rounded, or None when NaN)
    return Computed(cast(Summary, clean(summary)), buckets, shares, intervals, spec, run)


def _budget_used(by_slo: dict[str, SloRow], slo: str) -> float | None:
    row = by_slo.get(slo)
    return None if row is None else row["error_budget_used_pct"]


def _first(df: pl.DataFrame, col: str) -> Any:
    if col not in df.columns or df.height == 0:
        return None
    return df[col][0]
