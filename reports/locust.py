"""Summary of locust's CSVs (real-time runs): ``locust_stats.csv``, ``locust_stats_history.csv`` and
``locust_failures.csv`` (the errors locust saw, most frequent first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

MAX_FAILURES = 10
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
    out: dict[str, Any] = {
        "endpoints": [r for r in rows if r["name"] != "Aggregated"],
        "aggregated": next((r for r in rows if r["name"] == "Aggregated"), None),
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
