"""Multi-window, multi-burn-rate alerts (SRE workbook), replayed over the run.

Rules (both page): burn rate > 14.4 over 1 h and over 5 m; burn rate > 6 over 6 h and over 30 m. Burn rate =
error ratio in the window / (1 - objective). A run lasts minutes, so windows are scaled by a time compression
``k`` (real seconds per run second):
- ``long_window`` (default): the longest window (6 h) spans the run, k = 21600 / duration. A 180 s run maps 1 h
  to 30 s, 5 m to 2.5 s, 6 h to 180 s, 30 m to 15 s. Burn-rate thresholds are unchanged, so an alert fires
  when it would fire in production if the same error pattern played out k times slower.
- ``period``: the SLO period (30 d) spans the run, k = 2592000 / duration (windows become very short).
- ``alert_time_compression`` in the SLO block sets k explicitly.

An event is counted when its request ends (``t_end``), as a Prometheus counter would. Windows are ``(t - L, t]``.
The condition only changes at an event time or when an event leaves a window, so it is evaluated exactly at
those instants (no sampling grid): fire times are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from reports.slo import SloSpec
from reports.summary_models import AlertBlock, AlertRule

HOUR = 3600.0


@dataclass(frozen=True)
class Rule:
    name: str
    threshold: float
    long_s: float  # real seconds
    short_s: float


RULES = (Rule("14.4x 1h/5m", 14.4, HOUR, 300.0), Rule("6x 6h/30m", 6.0, 6 * HOUR, 1800.0))


def time_compression(spec: SloSpec, duration_s: float) -> float:
    if spec.alert_time_compression is not None:
        return spec.alert_time_compression
    if spec.alert_scaling == "period":
        return spec.period_days * 86400.0 / duration_s
    return max(r.long_s for r in RULES) / duration_s


def _window_counts(times: pl.Series, prefix_bad: pl.Series, at: pl.Series, window: float) -> pl.DataFrame:
    hi = times.search_sorted(at, side="right").cast(pl.Int64)
    lo = times.search_sorted(at - window, side="right").cast(pl.Int64)
    return pl.DataFrame({"n": hi - lo, "bad": prefix_bad.gather(hi) - prefix_bad.gather(lo)})


def firing_intervals(
    t_end: pl.Series, good: pl.Series, objective: float, rule: Rule, k: float, end_s: float
) -> list[tuple[float, float | None]]:
    """Intervals ``[start, end)`` (run seconds) during which the rule fires; ``end`` None = still firing."""
    if t_end.len() == 0:
        return []
    order = t_end.arg_sort()
    times = t_end.gather(order).cast(pl.Float64)
    bad = (~good.gather(order)).cast(pl.Int64)
    prefix = pl.concat([pl.Series([0], dtype=pl.Int64), bad.cum_sum()])
    long_s, short_s = rule.long_s / k, rule.short_s / k
    candidates = pl.concat([times, times + long_s, times + short_s]).unique().sort()
    at = candidates.filter(candidates <= end_s)
    if at.len() == 0:
        return []
    budget = 1.0 - objective
    cond = None
    for window in (long_s, short_s):
        w = _window_counts(times, prefix, at, window)
        burn = pl.when(w["n"] > 0).then(w["bad"] / w["n"] / budget).otherwise(0.0)
        fires = w.select((burn > rule.threshold).alias("f"))["f"]
        cond = fires if cond is None else (cond & fires)
    assert cond is not None
    frame = pl.DataFrame({"at": at, "on": cond}).with_columns(
        change=pl.col("on").cast(pl.Int8).diff().fill_null(pl.col("on").cast(pl.Int8))
    )
    starts = frame.filter(pl.col("change") == 1)["at"].to_list()
    stops = frame.filter(pl.col("change") == -1)["at"].to_list()
    out: list[tuple[float, float | None]] = []
    for i, s in enumerate(starts):
        out.append((s, stops[i] if i < len(stops) else None))
    return out


def evaluate_alerts(
    events: pl.DataFrame,
    objective: float,
    spec: SloSpec,
    duration_s: float,
    end_s: float,
    fault_start_s: float | None,
) -> AlertBlock:
    """All rules over one SLI's events (columns ``t_end``, ``good``).

    ``time_to_detect_s`` = first moment at or after the first fault's start when the rule is firing, minus that
    start (0 when it was already firing); null when it never fires after the fault or there is no fault.
    """
    k = time_compression(spec, duration_s)
    rules: list[AlertRule] = []
    for rule in RULES:
        intervals = firing_intervals(events["t_end"], events["good"], objective, rule, k, end_s)
        fired_at = intervals[0][0] if intervals else None
        detected_at = None
        if fault_start_s is not None:
            for start, stop in intervals:
                if stop is None or stop > fault_start_s:
                    detected_at = max(start, fault_start_s)
                    break
        ttd = None if detected_at is None or fault_start_s is None else detected_at - fault_start_s
        rules.append(
            {
                "rule": rule.name,
                "severity": "page",
                "threshold": rule.threshold,
                "long_window_s": rule.long_s / k,
                "short_window_s": rule.short_s / k,
                "fired": bool(intervals),
                "fired_at_s": fired_at,
                "cleared_at_s": intervals[0][1] if intervals else None,
                "firing": intervals,
                "fired_before_fault": bool(fault_start_s is not None and intervals and intervals[0][0] < fault_start_s),
                "time_to_detect_s": ttd,
                "time_to_detect_real_s": None if ttd is None else ttd * k,
            }
        )
    return {"time_compression": k, "scaling": _scaling_label(spec), "rules": rules}


def _scaling_label(spec: SloSpec) -> str:
    if spec.alert_time_compression is not None:
        return "explicit"
    return spec.alert_scaling
