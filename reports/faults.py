"""Per-fault figures: each injected fault's own window, impact and detection, measured from its own start.

A run may inject several faults, overlapping or not, starting at 0 or lasting past the run's end. Every figure
here is about one fault and is measured from that fault's start:
- ``requests``/``failed``/``availability``: requests arriving inside the fault's window ``[start_s, end_s)``
  (``end_s`` null = to the end of the run); requests inside several overlapping windows count for each;
- ``breaker_opened_at_s``: the first opening of the fault's own upstream's breaker at or after the fault's start
  and before its end (none for the state store, which has no breaker); ``breaker_delay_s`` = that - start;
- ``first_failover_at_s``: the first request arriving in the window whose first choice was the fault's upstream
  and that another provider served;
- ``page_at_s``: the first instant in the window when an availability page rule is firing;
  ``page_delay_s`` = that - start; ``page_already_firing`` when a rule was firing at the fault's start (set off
  by something earlier, so the delay says nothing about this fault);
- ``other_active``: the other faults whose windows overlap this one.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from reports.resilience import FAILED_OVER
from reports.slo import overall_table
from reports.summary_models import AlertRule


def fault_end(f: dict[str, Any]) -> float:
    """The end of a fault's window; one without an end lasts as long as anything is recorded."""
    return float(f["end_s"]) if f.get("end_s") is not None else float("inf")


def fault_label(f: dict[str, Any]) -> str:
    return f"{f.get('kind', 'fault')} on `{f.get('upstream', '?')}`"


def _in_window(start: float, end: float) -> pl.Expr:
    return (pl.col("t") >= start) & (pl.col("t") < end)


def _first_open(transitions: pl.DataFrame, provider: str, start: float, end: float) -> float | None:
    opened = transitions.filter(
        (pl.col("provider") == provider) & (pl.col("to") == "open") & (pl.col("t") >= start) & (pl.col("t") < end)
    )
    # Ignored on the next line: polars types min()/max() as any literal
    return float(opened["t"].min()) if opened.height else None  # type: ignore[arg-type]


def _page(rules: list[AlertRule], start: float, end: float) -> tuple[float | None, bool]:
    """First instant in ``[start, end)`` when a page rule fires, and whether one was already firing at ``start``."""
    first: float | None = None
    already = False
    for r in rules:
        for s, e in r["firing"]:
            if s <= start and (e is None or e > start):
                already = True
            at = max(s, start)
            if at < end and (e is None or e > at) and (first is None or at < first):
                first = at
    return first, already


def fault_figures(
    faults: list[dict[str, Any]],
    requests: pl.DataFrame,
    transitions: pl.DataFrame,
    page_rules: list[AlertRule],
    duration_s: float,
) -> list[dict[str, Any]]:
    """One dict per fault (in the order given); see the module docstring."""
    out = []
    for i, f in enumerate(faults):
        start, end = float(f["start_s"]), fault_end(f)
        upstream = str(f.get("upstream", ""))
        inside = requests.filter(_in_window(start, end))
        row = overall_table(inside).row(0, named=True)
        failover = inside.filter(FAILED_OVER & (pl.col("first_provider") == upstream))
        opened = _first_open(transitions, upstream, start, end)
        page_at, already = _page(page_rules, start, end)
        # Ignored on the next line: polars types min()/max() as any literal
        first_failover = float(failover["t"].min()) if failover.height else None  # type: ignore[arg-type]
        out.append(
            {
                "fault": fault_label(f),
                "upstream": upstream,
                "kind": f.get("kind"),
                "start_s": start,
                "end_s": f.get("end_s"),
                "until_end_of_run": f.get("end_s") is None or float(f["end_s"]) >= duration_s - 1e-9,
                "requests": row["requests"],
                "valid": row["valid"],
                "failed": row["bad"],
                "availability": row["availability"],
                "ttft_p50": row["ttft_p50"],
                "ttft_p95": row["ttft_p95"],
                "e2e_p99": row["e2e_p99"],
                "breaker_opened_at_s": opened,
                "breaker_delay_s": None if opened is None else opened - start,
                "first_failover_at_s": first_failover,
                "failover_delay_s": None if first_failover is None else first_failover - start,
                "page_at_s": page_at,
                "page_delay_s": None if page_at is None else page_at - start,
                "page_already_firing": already,
                "other_active": [
                    fault_label(g)
                    for j, g in enumerate(faults)
                    if j != i and float(g["start_s"]) < end and fault_end(g) > start
                ],
            }
        )
    return out
