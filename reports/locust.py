"""Summary of locust's CSVs (real-time runs): ``locust_stats.csv``, ``locust_stats_history.csv`` and
``locust_failures.csv`` (the errors locust saw, most frequent first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

MAX_FAILURES = 10
PSEUDO_TYPE = "TTFT"  # experiments/locustfile.py reports each stream's time to first token as a pseudo-request
_STATS = {
    "Request Count": "requests",
    "Failure Count": "failures",
    "Median Response Time": "median_ms",
    "Average Response Time": "mean_ms",
    "95%": "p95_ms",
    "99%": "p99_ms",
    "Max Response Time": "max_ms",
    "Requests/s": "rps",
    "Failures/s": "failures_per_s",
}


def _num(value: Any) -> float | None:
    try:
        return None if value in (None, "", "N/A") else float(value)
    except (TypeError, ValueError):
        return None


def _aggregated(endpoints: list[dict[str, Any]], locust_row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Locust's own "Aggregated" row, unless TTFT samples (pseudo-requests of type ``TTFT``) are in it: then the
    sum of the real requests' counts, with no pooled percentiles (they cannot be rebuilt from the rows)."""
    if not any(r["type"] == PSEUDO_TYPE for r in endpoints):
        return locust_row
    real = [r for r in endpoints if r["type"] != PSEUDO_TYPE]
    total: dict[str, Any] = {k: None for k in ("type", "name", *_STATS.values())}
    total |= {"type": "", "name": "Total (requests; TTFT samples excluded)"}
    for key in ("requests", "failures", "rps", "failures_per_s"):
        values = [r[key] for r in real if r[key] is not None]
        total[key] = sum(values) if values else None
    return total


def locust_summary(run_dir: Path) -> dict[str, Any] | None:
    """Per-endpoint rows and the aggregate from locust's CSVs; None when the run has none."""
    stats_path = run_dir / "locust_stats.csv"
    if not stats_path.exists():
        return None
    stats = pl.read_csv(stats_path, infer_schema=False)
    rows = []
    for rec in stats.iter_rows(named=True):
        row: dict[str, Any] = {"type": rec.get("Type") or "", "name": rec.get("Name") or ""}
        for src, dst in _STATS.items():
            row[dst] = _num(rec.get(src))
        rows.append(row)
    endpoints = [r for r in rows if r["name"] != "Aggregated"]
    out: dict[str, Any] = {
        "endpoints": endpoints,
        "aggregated": _aggregated(endpoints, next((r for r in rows if r["name"] == "Aggregated"), None)),
    }
    history_path = run_dir / "locust_stats_history.csv"
    if history_path.exists():
        hist = pl.read_csv(history_path, infer_schema=False)
        agg = hist.filter(pl.col("Name") == "Aggregated") if "Name" in hist.columns else hist
        peak: dict[str, float | None] = {}
        for src, dst in (("User Count", "peak_users"), ("Requests/s", "peak_rps"), ("95%", "peak_p95_ms")):
            if src in agg.columns:
                values = [v for v in (_num(x) for x in agg[src].to_list()) if v is not None]
                peak[dst] = max(values) if values else None
        if any(r["type"] == PSEUDO_TYPE for r in endpoints):  # the aggregate history counts TTFT samples too
            peak.pop("peak_rps", None)
            peak.pop("peak_p95_ms", None)
        out["history"] = {"samples": agg.height, **peak}
    failures_path = run_dir / "locust_failures.csv"
    if failures_path.exists():
        fails = pl.read_csv(failures_path, infer_schema=False)
        rows = [
            {"method": r.get("Method") or "", "name": r.get("Name") or "", "error": r.get("Error") or "", "count": n}
            for r in fails.iter_rows(named=True)
            if (n := _num(r.get("Occurrences"))) is not None
        ]
        out["failures"] = sorted(rows, key=lambda r: (-r["count"], r["error"]))[:MAX_FAILURES]
    return out
