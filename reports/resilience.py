"""Resilience figures: retry amplification, failover, breakers, shedding, quotas, guardrails, chaos.

Definitions (each takes an already filtered requests frame, so expectations can window them):
- admitted request: reached routing: outcome ``ok``, ``error`` or ``cancelled``, or a ``client_error`` that made
  at least one upstream call (an upstream 400); shed, quota-rejected and gateway-validated requests are not;
- upstream call: an attempt whose outcome is not ``breaker_open`` or ``shed`` (those never left the gateway);
- upstream calls per client request (retry amplification) = upstream calls / admitted requests;
- failover: a good request served by a provider other than its first attempt's (an attempt skipped because the
  breaker was open counts as the first attempt); failover share = failed-over requests / requests whose first
  attempt did not succeed (failed, or skipped by an open breaker): "when the first choice failed, how often
  did another provider save the request";
- breaker state intervals: from the transitions (request log and ``events.jsonl``); before a provider's first
  transition it is in that transition's ``from`` state (``closed`` if absent);
- calls while open: upstream calls started strictly inside an open interval; a call starting within 1 ms of the
  interval's start (the call that opened it) or end (the half-open probe) belongs to the boundary.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from reports.load import TAG_SEP
from reports.slo import GOOD

ADMITTED = pl.col("outcome").is_in(("ok", "error", "cancelled")) | (
    (pl.col("outcome") == "client_error") & (pl.col("n_calls") > 0)
)
FAILED_OVER = (
    GOOD
    & pl.col("first_provider").is_not_null()
    & pl.col("provider").is_not_null()
    & (pl.col("provider") != pl.col("first_provider"))
)
BOUNDARY_S = 1e-3  # calls within 1 ms of an open interval's edges belong to the edge (see calls_while_open)
NEEDED_FAILOVER = pl.col("first_outcome").is_not_null() & (pl.col("first_outcome") != "ok")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def amplification(requests: pl.DataFrame) -> dict[str, Any]:
    row = requests.select(
        ADMITTED.sum().alias("admitted"),
        pl.col("n_calls").sum().alias("calls"),
        pl.col("retries").sum().alias("retries"),
        pl.col("retry_budget_exhausted").sum().alias("rbe"),
    ).row(0, named=True)
    admitted, calls = int(row["admitted"] or 0), int(row["calls"] or 0)
    return {
        "admitted_requests": admitted,
        "upstream_calls": calls,
        "upstream_calls_per_request": _ratio(calls, admitted),
        "retries": int(row["retries"] or 0),
        "retry_budget_exhausted": int(row["rbe"] or 0),
    }


def failover(requests: pl.DataFrame) -> dict[str, Any]:
    row = requests.select(
        FAILED_OVER.sum().alias("failed_over"),
        NEEDED_FAILOVER.sum().alias("needed"),
        pl.col("t").filter(FAILED_OVER).min().alias("first"),
    ).row(0, named=True)
    failed_over, needed = int(row["failed_over"] or 0), int(row["needed"] or 0)
    return {
        "failed_over": failed_over,
        "first_attempt_failed": needed,
        "failover_share": _ratio(failed_over, needed),
        "first_failover_at_s": row["first"],
    }


def breaker_intervals(transitions: pl.DataFrame, end_s: float) -> pl.DataFrame:
    """Per provider, the state held over ``[start, end)`` (run seconds), from 0 to ``end_s``."""
    schema = {"provider": pl.String, "state": pl.String, "start": pl.Float64, "end": pl.Float64}
    if transitions.height == 0:
        return pl.DataFrame(schema=schema)
    tr = transitions.sort("provider", "t")
    first = (
        tr.group_by("provider", maintain_order=True)
        .first()
        .select("provider", state=pl.col("from").fill_null("closed"), start=pl.lit(0.0))
    )
    later = tr.select("provider", state=pl.col("to"), start=pl.col("t").clip(lower_bound=0.0))
    out = (
        pl.concat([first, later])
        .sort("provider", "start", maintain_order=True)
        .with_columns(end=pl.col("start").shift(-1).over("provider").fill_null(max(end_s, 0.0)))
        .filter(pl.col("end") > pl.col("start"))
    )
    return out.select(schema.keys())


def breaker_figures(transitions: pl.DataFrame, intervals: pl.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for provider in sorted(set(transitions["provider"].to_list())):
        tr = transitions.filter(pl.col("provider") == provider)
        iv = intervals.filter(pl.col("provider") == provider).with_columns(d=pl.col("end") - pl.col("start"))
        opened = tr.filter(pl.col("to") == "open")
        out[provider] = {
            "transitions": tr.height,
            "opened": opened.height,
            "first_open_at_s": opened["t"].min() if opened.height else None,
            "open_s": float(iv.filter(pl.col("state") == "open")["d"].sum()),
            "half_open_s": float(iv.filter(pl.col("state") == "half_open")["d"].sum()),
            "by_target_state": _counts(tr, "to"),
        }
    return out


def calls_while_open(attempts: pl.DataFrame, intervals: pl.DataFrame, provider: str, grace_s: float) -> int:
    """Upstream calls to ``provider`` started strictly inside one of its open intervals (after ``grace_s``).

    A call that starts at the very instant the breaker opens is the call whose failure opened it; one that starts
    at the instant the breaker leaves ``open`` is the half-open probe (when the probe fails at once, its
    ``half_open`` interval has zero length and the next ``open`` interval starts at the same instant). Both are
    attributed to the boundary, within ``BOUNDARY_S`` for timestamp rounding.
    """
    iv = intervals.filter((pl.col("provider") == provider) & (pl.col("state") == "open"))
    calls = attempts.filter((pl.col("provider") == provider) & ~pl.col("outcome").is_in(("breaker_open", "shed")))
    if iv.height == 0 or calls.height == 0:
        return 0
    hits = (
        calls.select("t")
        .join(iv.select("start", "end"), how="cross")
        .filter((pl.col("t") > pl.col("start") + max(grace_s, BOUNDARY_S)) & (pl.col("t") < pl.col("end") - BOUNDARY_S))
    )
    return hits.height


def _counts(df: pl.DataFrame, col: str) -> dict[str, int]:
    if df.height == 0:
        return {}
    g = df.group_by(col).agg(pl.len().alias("n")).sort(col, nulls_last=True)
    return {str(k): int(n) for k, n in g.iter_rows()}


def _tag_counts(requests: pl.DataFrame, col: str) -> dict[str, int]:
    exploded = requests.select(pl.col(col).str.split(TAG_SEP).explode()).drop_nulls()
    return _counts(exploded, col)


def resilience(
    requests: pl.DataFrame, attempts: pl.DataFrame, transitions: pl.DataFrame, end_s: float
) -> dict[str, Any]:
    """Every resilience figure of the run (JSON-ready)."""
    intervals = breaker_intervals(transitions, end_s)
    calls = attempts.filter(~pl.col("outcome").is_in(("breaker_open", "shed")))
    per_provider = (
        calls.group_by("provider")
        .agg(
            pl.len().alias("calls"),
            (pl.col("outcome") != "ok").sum().alias("failed"),
            pl.col("injected").sum().alias("injected"),
            pl.col("duration_s").mean().alias("mean_duration_s"),
        )
        .sort("provider")
    )
    bad = requests.filter(pl.col("outcome").is_in(("error", "shed")))
    return {
        **amplification(requests),
        **failover(requests),
        "attempts_by_outcome": _counts(attempts, "outcome"),
        "upstream_calls_by_provider": per_provider.to_dicts(),
        "breakers": {
            name: {**b, "calls_while_open": calls_while_open(attempts, intervals, name, 0.0)}
            for name, b in breaker_figures(transitions, intervals).items()
        },
        "breaker_transitions": transitions.select("t", "provider", "from", "to").to_dicts(),
        "shed": int((requests["outcome"] == "shed").sum()),
        "shed_by_reason": _counts(requests.filter(pl.col("outcome") == "shed"), "shed_reason"),
        "shed_by_priority": _counts(requests.filter(pl.col("outcome") == "shed"), "priority"),
        "quota_rejected": int((requests["outcome"] == "quota_rejected").sum()),
        "quota_rejected_by_limit": _counts(requests.filter(pl.col("outcome") == "quota_rejected"), "quota_limit"),
        "quota_rejected_by_consumer": _counts(requests.filter(pl.col("outcome") == "quota_rejected"), "consumer"),
        "errors_by_type": _counts(bad, "error_type"),
        "guardrail_actions": _tag_counts(requests, "guardrail"),
        "chaos_injections": _tag_counts(requests, "chaos"),
        "injected_attempts": int(attempts["injected"].sum()) if attempts.height else 0,
        "pinned_requests": int(requests["pinned"].sum()) if requests.height else 0,
    }
