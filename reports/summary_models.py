"""The shape of ``summary.json``: typed dicts, so the summary is built and read with checked keys and serialises
exactly as the plain dict it is at run time (reports/summary.py builds it; report.md, postmortem.md, the charts,
``make slo-check`` and the incident drill read it).

Floats are as :func:`reports.summary.clean` leaves them: rounded, and None where a figure is undefined (no events,
NaN). Blocks that are rows of a table (per consumer, per bucket, the SLIs of a slice) or echo the scenario's own
input (its faults) stay ``dict[str, Any]``: their columns are the tables' (reports/slo.py, reports/timeseries.py).
"""

from __future__ import annotations

from typing import Any, TypedDict


class Phase(TypedDict):
    name: str
    start_s: float
    end_s: float


class ScenarioInfo(TypedDict):
    name: str
    description: str
    duration_s: float
    faults: list[dict[str, Any]]  # the scenario's faults as written, start_s/end_s as floats, by start
    phases: list[Phase]
    seed: int | None


class RunInfo(TypedDict):
    run_id: str | None
    mode: str | None
    workers: int | None
    t0: float
    records: int
    end_s: float
    bucket_s: float
    quantile_method: str


class Figures(TypedDict):
    """The headline figures ``make slo-check`` compares with the baselines."""

    requests: int
    availability: float | None
    availability_budget_used_pct: float | None
    ttft_p95_s: float | None
    e2e_p99_s: float | None
    ttft_p95_budget_used_pct: float | None
    e2e_p99_budget_used_pct: float | None
    upstream_calls_per_request: float | None
    failover_share: float | None
    time_to_detect_s: float | None
    shed: int
    quota_rejected: int
    cost_usd: float | None


class SloRow(TypedDict):
    """One SLO's result (reports/slo.py)."""

    slo: str
    title: str
    objective: float
    threshold_s: float | None
    target: float | None
    achieved: float | None
    good_ratio: float | None
    events: int
    bad_events: int
    error_budget_consumed: float | None
    error_budget_used_pct: float | None
    verdict: str  # met | broken


class AlertRule(TypedDict):
    """One multi-window burn-rate page rule over one SLI (reports/alerts.py)."""

    rule: str
    severity: str
    threshold: float
    long_window_s: float
    short_window_s: float
    fired: bool
    fired_at_s: float | None
    cleared_at_s: float | None
    firing: list[tuple[float, float | None]]  # [start, end) (arrays in JSON); end None: firing at the run's end
    fired_before_fault: bool
    time_to_detect_s: float | None
    time_to_detect_real_s: float | None


class AlertBlock(TypedDict):
    time_compression: float
    scaling: str
    rules: list[AlertRule]


class Impact(TypedDict):
    failed_requests: int
    failed_by_outcome: dict[str, int]
    consumers_affected: list[str]
    first_failure_at_s: float | None
    last_failure_at_s: float | None
    recovered_at_s: float | None


class FaultWindows(TypedDict):
    during_faults: dict[str, Any]
    outside_faults: dict[str, Any]


class GateBudget(TypedDict):
    slo: str
    title: str
    used_pct: float | None
    allowed_pct: float
    held: bool


class SloGateResult(TypedDict):
    budgets: list[GateBudget]
    reason: str | None
    tolerances: dict[str, float]


class Summary(TypedDict):
    schema: int
    scenario: ScenarioInfo
    run: RunInfo
    slo: dict[str, Any]  # the scenario's SLO spec, with its defaults (reports.slo.SloSpec)
    figures: Figures
    slos: list[SloRow]
    overall: dict[str, Any]
    by_consumer: list[dict[str, Any]]
    by_provider: list[dict[str, Any]]
    by_model: list[dict[str, Any]]
    alerts: dict[str, AlertBlock]  # by SLI name
    resilience: dict[str, Any]
    impact: Impact
    fault_windows: FaultWindows | None
    fault_impact: list[dict[str, Any]]
    expectations: list[dict[str, Any]]
    slo_gate: SloGateResult
    buckets: list[dict[str, Any]]
    locust: dict[str, Any] | None
    metrics: dict[str, Any] | None
