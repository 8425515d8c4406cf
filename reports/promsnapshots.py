"""The gateway's Prometheus snapshots of a real-time run: ``metrics/t<seconds>.prom`` and ``metrics/final.prom``.

The real-time runner scrapes ``/metrics`` every few seconds into ``metrics/t<elapsed s>.prom`` and once more at
the end into ``final.prom``. Counters are read from the final snapshot (the last ``t*.prom`` when there is
none): they are totals since the gateway started, so they cover the whole run. Gauges are read from every
snapshot: peak requests in flight, peak admission queue depth, lowest ``faultline_state_store_up``. The
counters are cross-checked against the request log in the report (a mismatch means records were lost or the
gateway served traffic outside the run).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

_SNAPSHOT = re.compile(r"^t(\d+(?:\.\d+)?)\.prom$")


def _counters(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Counter family name (without ``_total``) -> [(labels, value)] of its ``_total`` samples."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(text):
        if fam.type != "counter":
            continue
        for s in fam.samples:
            if s.name == f"{fam.name}_total":
                out[fam.name].append((dict(s.labels), float(s.value)))
    return out


def _gauges(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(text):
        if fam.type == "gauge":
            out[fam.name] += [(dict(s.labels), float(s.value)) for s in fam.samples]
    return out


def _total(samples: list[tuple[dict[str, str], float]]) -> int:
    return round(sum(v for _, v in samples))


def _by(samples: list[tuple[dict[str, str], float]], *labels: str) -> dict[str, int]:
    acc: dict[str, float] = defaultdict(float)
    for lab, v in samples:
        acc["/".join(lab.get(x, "") for x in labels)] += v
    return {k: round(v) for k, v in sorted(acc.items()) if round(v)}


def summarise_counters(text: str) -> dict[str, Any]:
    c = _counters(text)
    return {
        "requests": _total(c["faultline_requests"]),
        "requests_by_status": _by(c["faultline_requests"], "status"),
        "upstream_attempts_by_outcome": _by(c["faultline_upstream_attempts"], "outcome"),
        "fallbacks": _total(c["faultline_fallbacks"]),
        "retries": _total(c["faultline_retries"]),
        "retry_budget_exhausted": _total(c["faultline_retry_budget_exhausted"]),
        "shed_by_reason": _by(c["faultline_shed_requests"], "reason"),
        "quota_rejections": _total(c["faultline_quota_rejections"]),
        "breaker_transitions": _by(c["faultline_breaker_transitions"], "provider", "to_state"),
        "tokens_by_type": _by(c["faultline_tokens"], "type"),
        "cost_usd": round(sum(v for _, v in c["faultline_cost_usd"]), 6),
        "guardrail_actions": _by(c["faultline_guardrail_actions"], "guardrail", "action"),
        "chaos_injections": _by(c["faultline_chaos_injections"], "fault"),
        "state_store_failures": _total(c["faultline_state_store_failures"]),
    }


def _gauge_value(gauges: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float | None:
    values = [v for _, v in gauges.get(name, [])]
    return sum(values) if values else None


def metrics_summary(run_dir: Path) -> dict[str, Any] | None:
    """Counters from the final snapshot and gauge extremes over all snapshots; None without ``metrics/``."""
    mdir = run_dir / "metrics"
    snaps = sorted(
        ((float(m.group(1)), p) for p in mdir.glob("t*.prom") if (m := _SNAPSHOT.match(p.name))),
        key=lambda x: x[0],
    )
    final = mdir / "final.prom"
    if not final.exists():
        final = snaps[-1][1] if snaps else final
    if not final.exists():
        return None
    peaks: dict[str, list[float]] = {"in_flight": [], "queue_depth": [], "state_store_up": []}
    for _, path in snaps:
        g = _gauges(path.read_text(encoding="utf-8"))
        for key, name in (
            ("in_flight", "faultline_requests_in_flight"),
            ("queue_depth", "faultline_queue_depth"),
            ("state_store_up", "faultline_state_store_up"),
        ):
            value = _gauge_value(g, name)
            if value is not None:
                peaks[key].append(value)
    return {
        "snapshots": len(snaps),
        "source": final.name,
        **summarise_counters(final.read_text(encoding="utf-8")),
        "peak_in_flight": max(peaks["in_flight"], default=None),
        "peak_queue_depth": max(peaks["queue_depth"], default=None),
        "min_state_store_up": min(peaks["state_store_up"], default=None),
    }
