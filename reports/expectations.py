"""Expectations: the schema (re-exported from ``reports.expectation_models``) and the evaluators.

``EVALUATORS`` maps each ``kind`` to a function ``(expectation, Context) -> (held, figure, detail)`` over the
polars frames; :func:`evaluate` returns one JSON-ready result per expectation. A figure that cannot be computed
(no events in scope) breaks a ``min_*``/``max_*`` latency or availability expectation, with the reason in the
detail, except where the absence is the point (no calls, no transitions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import polars as pl

from reports import expectation_models as m
from reports.expectation_models import Expectation, ExpectationError, parse_expectations
from reports.resilience import amplification, calls_while_open, failover
from reports.slo import E2E_POP, GOOD, QUANTILE_METHOD, TTFT_POP, VALID
from reports.summary_models import AlertBlock, AlertRule, SloRow

__all__ = ["EVALUATORS", "Context", "Expectation", "ExpectationError", "evaluate", "parse_expectations"]

Outcome = tuple[bool, float | None, str]


@dataclass
class Context:
    requests: pl.DataFrame
    attempts: pl.DataFrame
    transitions: pl.DataFrame
    intervals: pl.DataFrame  # reports.resilience.breaker_intervals
    slo_rows: list[SloRow] = field(default_factory=list)
    alerts: dict[str, AlertBlock] = field(default_factory=dict)  # SLI name -> evaluate_alerts(...)
    fault_start_s: float | None = None


def _scoped(exp: Any, requests: pl.DataFrame) -> pl.DataFrame:
    cond = pl.lit(True)
    window = getattr(exp, "window", None)
    if window is not None:
        cond = cond & (pl.col("t") >= window[0]) & (pl.col("t") < window[1])
    if getattr(exp, "consumer", None) is not None:
        cond = cond & (pl.col("consumer") == exp.consumer)
    if getattr(exp, "provider", None) is not None and "provider" not in exp.scoped_by_default():
        cond = cond & (pl.col("provider") == exp.provider)
    return requests.filter(cond)


def _breaker_opens_within(exp: m.BreakerOpensWithin, ctx: Context) -> Outcome:
    opened = ctx.transitions.filter(
        (pl.col("provider") == exp.provider) & (pl.col("to") == "open") & (pl.col("t") >= exp.after_s)
    )
    if opened.height == 0:
        return False, None, f"the {exp.provider} breaker never opened after {exp.after_s:g} s"
    delay = float(opened["t"].min()) - exp.after_s  # type: ignore[arg-type]  # polars types min()/max() as any literal
    return delay <= exp.within_s, delay, f"opened {delay:.3g} s after t={exp.after_s:g} s"


def _breaker_stays_closed(exp: m.BreakerStaysClosed, ctx: Context) -> Outcome:
    n = ctx.transitions.filter((pl.col("provider") == exp.provider) & (pl.col("to") == "open")).height
    return n == 0, float(n), f"opened {n} time(s)"


def _no_requests_while_open(exp: m.NoRequestsWhileBreakerOpen, ctx: Context) -> Outcome:
    n = calls_while_open(ctx.attempts, ctx.intervals, exp.provider, exp.grace_s)
    opened = ctx.intervals.filter((pl.col("provider") == exp.provider) & (pl.col("state") == "open")).height
    detail = f"{n} upstream call(s) while open" if opened else "the breaker never opened"
    return n <= exp.max_calls, float(n), detail


def _min_breaker_transitions(exp: m.MinBreakerTransitions, ctx: Context) -> Outcome:
    n = ctx.transitions.filter((pl.col("provider") == exp.provider) & (pl.col("to") == exp.to)).height
    return n >= exp.value, float(n), f"{n} transition(s) to {exp.to}"


def _max_calls_per_request(exp: m.MaxUpstreamCallsPerRequest, ctx: Context) -> Outcome:
    a = amplification(_scoped(exp, ctx.requests))
    x = a["upstream_calls_per_request"]
    detail = f"{a['upstream_calls']} calls / {a['admitted_requests']} admitted requests"
    return x is None or x <= exp.value, x, detail


def _max_calls_per_logical_request(exp: m.MaxUpstreamCallsPerLogicalRequest, ctx: Context) -> Outcome:
    sel = _scoped(exp, ctx.requests)
    logical = sel["request_id"].str.replace(r"-\d+$", "").n_unique()
    calls = int(sel["n_calls"].sum() or 0)
    if logical == 0:
        return True, None, "no requests in scope"
    return calls / logical <= exp.value, calls / logical, f"{calls} calls / {logical} logical requests"


def _min_availability(exp: m.MinAvailability, ctx: Context) -> Outcome:
    row = _scoped(exp, ctx.requests).select(VALID.sum().alias("v"), GOOD.sum().alias("g")).row(0)
    valid, good = int(row[0] or 0), int(row[1] or 0)
    if valid == 0:
        return False, None, "no valid requests in scope"
    return good / valid >= exp.value, good / valid, f"{good} good / {valid} valid"


def _quantile(exp: Any, ctx: Context, metric: str, q: float) -> Outcome:
    col, pop = ("ttft_s", TTFT_POP) if metric == "ttft" else ("e2e_s", E2E_POP)
    sel = _scoped(exp, ctx.requests).filter(pop)
    if sel.height == 0:
        return False, None, f"no good {'streamed ' if metric == 'ttft' else ''}requests in scope"
    found = sel[col].quantile(q, interpolation=QUANTILE_METHOD)
    assert found is not None  # a non-empty column has every quantile
    x = float(found)
    return x <= exp.value, x, f"{metric} p{q * 100:g} over {sel.height} requests"


def _min_failover_share(exp: m.MinFailoverShare, ctx: Context) -> Outcome:
    f = failover(_scoped(exp, ctx.requests))
    x = f["failover_share"]
    if x is None:
        return False, None, "no request needed failover in scope"
    return x >= exp.value, x, f"{f['failed_over']} failed over / {f['first_attempt_failed']} first attempts failed"


def _min_provider_share(exp: m.MinProviderShare, ctx: Context) -> Outcome:
    good = _scoped(exp, ctx.requests).filter(GOOD)
    if good.height == 0:
        return False, None, "no good requests in scope"
    n = int((good["provider"] == exp.provider).sum())
    return n / good.height >= exp.value, n / good.height, f"{n} / {good.height} good requests"


def _max_budget(exp: m.MaxErrorBudgetConsumed, ctx: Context) -> Outcome:
    row = next((r for r in ctx.slo_rows if r["slo"] == exp.slo), None)
    if row is None:
        return False, None, f"the scenario defines no {exp.slo} SLO"
    x = row["error_budget_consumed"]
    return x is not None and x <= exp.value, x, f"{row['bad_events']} bad of {row['events']} events"


def _max_spend(exp: m.MaxSpendUsd, ctx: Context) -> Outcome:
    sel = _scoped(exp, ctx.requests)
    spent = float(sel["cost_usd"].sum() or 0.0)
    return spent <= exp.value, spent, f"${spent:.6f} over {sel.height} requests"


def _outcome_count(exp: m.OutcomeCount, ctx: Context) -> Outcome:
    n = int((_scoped(exp, ctx.requests)["outcome"] == exp.outcome).sum())
    held = (exp.min is None or n >= exp.min) and (exp.max is None or n <= exp.max)
    return held, float(n), f"{n} {exp.outcome}"


def _rules(exp: Any, ctx: Context) -> list[AlertRule]:
    block = ctx.alerts.get(exp.slo)
    rules = block["rules"] if block is not None else []
    return [r for r in rules if exp.rule is None or r["rule"] == exp.rule]


def _alert_fires_within(exp: m.AlertFiresWithin, ctx: Context) -> Outcome:
    key: Literal["time_to_detect_s", "fired_at_s"] = (
        "time_to_detect_s" if ctx.fault_start_s is not None else "fired_at_s"
    )
    times = [t for t in (r[key] for r in _rules(exp, ctx)) if t is not None]
    if not times:
        return False, None, "no alert fired" + (" after the fault started" if ctx.fault_start_s is not None else "")
    ttd = min(times)
    ref = "the first fault" if ctx.fault_start_s is not None else "the run start"
    return ttd <= exp.within_s, ttd, f"fired {ttd:.3g} s after {ref}"


def _no_alert_fires(exp: m.NoAlertFires, ctx: Context) -> Outcome:
    fired = [r["rule"] for r in _rules(exp, ctx) if r["fired"]]
    return not fired, float(len(fired)), ("fired: " + ", ".join(fired)) if fired else "no alert fired"


EVALUATORS: Mapping[str, Callable[[Any, Context], Outcome]] = MappingProxyType(
    {
        "breaker_opens_within": _breaker_opens_within,
        "breaker_stays_closed": _breaker_stays_closed,
        "no_requests_while_breaker_open": _no_requests_while_open,
        "min_breaker_transitions": _min_breaker_transitions,
        "max_upstream_calls_per_request": _max_calls_per_request,
        "min_availability": _min_availability,
        "max_ttft_p95_s": lambda e, c: _quantile(e, c, "ttft", 0.95),
        "max_e2e_p99_s": lambda e, c: _quantile(e, c, "e2e", 0.99),
        "max_latency_s": lambda e, c: _quantile(e, c, e.metric, e.quantile),
        "min_failover_share": _min_failover_share,
        "min_provider_share": _min_provider_share,
        "max_error_budget_consumed": _max_budget,
        "outcome_count": _outcome_count,
        "max_upstream_calls_per_logical_request": _max_calls_per_logical_request,
        "max_spend_usd": _max_spend,
        "alert_fires_within": _alert_fires_within,
        "no_alert_fires": _no_alert_fires,
    }
)

_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "breaker_opens_within": "{provider} breaker opens within {within_s:g} s of t={after_s:g} s",
        "breaker_stays_closed": "{provider} breaker never opens",
        "no_requests_while_breaker_open": "no upstream calls reach {provider} while its breaker is open",
        "min_breaker_transitions": "{provider} breaker goes to {to} at least {value} time(s)",
        "max_upstream_calls_per_request": "upstream calls per client request <= {value:g}",
        "min_availability": "availability >= {value:.4g}",
        "max_ttft_p95_s": "TTFT p95 <= {value:g} s",
        "max_e2e_p99_s": "end-to-end p99 <= {value:g} s",
        "max_latency_s": "{metric} p{quantile_pct:g} <= {value:g} s",
        "min_failover_share": "failover share >= {value:.3g}",
        "min_provider_share": "{provider} serves >= {value:.3g} of good requests",
        "max_error_budget_consumed": "{slo} error budget consumed <= {value:.3g}",
        "outcome_count": "{outcome} count in [{min}, {max}]",
        "max_spend_usd": "spend <= ${value:g}",
        "max_upstream_calls_per_logical_request": "upstream calls per logical request (retries included) <= {value:g}",
        "alert_fires_within": "a page alert on {slo} fires within {within_s:g} s of the first fault",
        "no_alert_fires": "no page alert on {slo} fires",
    }
)


def describe(exp: Any) -> str:
    fields = exp.model_dump()
    if "quantile" in fields:
        fields["quantile_pct"] = fields["quantile"] * 100
    fields = {k: ("-" if v is None else v) for k, v in fields.items()}
    text: str = _TEXT[exp.kind].format(**fields) + exp.scope()
    return text


def evaluate(expectations: list[Expectation], ctx: Context) -> list[dict[str, Any]]:
    out = []
    for exp in expectations:
        held, figure, detail = EVALUATORS[exp.kind](exp, ctx)
        out.append(
            {
                "kind": exp.kind,
                "expectation": describe(exp),
                "held": bool(held),
                "figure": figure,
                "detail": detail + (f" - {exp.note}" if exp.note else ""),
            }
        )
    return out
