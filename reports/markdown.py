"""``report.md``: rendered from the summary dict alone (so it can be regenerated from ``summary.json``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reports.summary_models import Summary

MAX_SPANS = 6  # firing intervals listed per rule in report.md; summary.json has them all


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}g}"


def pct(x: float | None, digits: int = 3) -> str:
    """A ratio as a percentage; exactly 1 is "100 %", above 1 (an error budget overspent) is shown as it is."""
    if x is None:
        return "n/a"
    value = 100 * x
    return "100 %" if value == 100 else f"{value:,.{digits}f} %"


def secs(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.2f} s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return "\n".join(out)


def verdict(held: bool) -> str:
    return "held" if held else "**BROKEN**"


def slo_table(s: Summary) -> str:
    rows = []
    for r in s["slos"]:
        if r["slo"] == "availability":
            target, achieved = pct(r["target"]), pct(r["achieved"])
        else:
            target, achieved = f"<= {secs(r['target'])}", secs(r["achieved"])
        rows.append(
            [
                r["title"],
                target,
                achieved,
                f"{r['bad_events']:,} / {r['events']:,}",
                pct(r["error_budget_consumed"], 1),
                "met" if r["verdict"] == "met" else "**BROKEN**",
            ]
        )
    return table(["SLO", "target", "achieved", "bad / events", "error budget used", "verdict"], rows)


def expectations_table(s: Summary) -> str:
    if not s["expectations"]:
        return "_The scenario declares no expectations._"
    rows = [[verdict(e["held"]), e["expectation"], num(e["figure"]), e["detail"]] for e in s["expectations"]]
    return table(["result", "expectation", "figure", "detail"], rows)


def gate_table(s: Summary) -> str:
    """The SLO budgets ``make slo-check`` holds the scenario to (gate (a); see docs/REPORTS.md)."""
    gate = s["slo_gate"]
    rows = [
        [
            verdict(b["held"]),
            b["title"],
            pct(None if b["used_pct"] is None else b["used_pct"] / 100, 1),
            f"<= {pct(b['allowed_pct'] / 100, 1)}",
        ]
        for b in gate["budgets"]
    ]
    why = str(gate["reason"] or "").strip()
    reason = f"\n\nAllowed to break on purpose: {why}{'' if why.endswith(('.', '!', '?')) else '.'}" if why else ""
    return table(["result", "SLO", "error budget used", "allowed"], rows) + reason


def alerts_section(s: Summary) -> str:
    a = s["alerts"]["availability"]
    k = a["time_compression"]
    lines = [
        f"Time compression k = {k:.4g} real seconds per run second ({a['scaling']} scaling; see docs/REPORTS.md). "
        "Burn rate = error ratio in the window / (1 - objective); a rule fires when both its windows exceed "
        "its threshold. Time to detect is measured from the first fault's start.",
        "",
    ]
    rows = []
    for sli, block in s["alerts"].items():
        for r in block["rules"]:
            spans = [f"[{num(x, 5)}, {num(y, 5) if y is not None else 'end'})" for x, y in r["firing"]]
            more = len(spans) - MAX_SPANS
            firing = ", ".join(spans[:MAX_SPANS]) + (f" and {more} more (summary.json)" if more > 0 else "")
            ttd = r["time_to_detect_s"]
            rows.append(
                [
                    sli,
                    r["rule"],
                    f"{num(r['long_window_s'])} s / {num(r['short_window_s'])} s",
                    num(r["fired_at_s"], 5) if r["fired"] else "never",
                    "n/a" if ttd is None else f"{secs(ttd)} (~{secs(r['time_to_detect_real_s'])} real)",
                    firing or "-",
                ]
            )
    lines.append(table(["SLO", "rule", "windows (run s)", "first fired at (s)", "time to detect", "firing"], rows))
    return "\n".join(lines)


def resilience_section(s: Summary) -> str:
    r = s["resilience"]
    items = [
        (
            "upstream calls per client request",
            f"{num(r['upstream_calls_per_request'])} "
            f"({r['upstream_calls']:,} calls / {r['admitted_requests']:,} admitted)",
        ),
        ("retries", num(r["retries"])),
        ("retry budget exhausted (requests)", num(r["retry_budget_exhausted"])),
        (
            f"failover share (whole run, 0-{num(s['run']['end_s'])} s)",
            f"{pct(r['failover_share'], 1)} ({r['failed_over']:,} failed over / "
            f"{r['first_attempt_failed']:,} first attempts failed)",
        ),
        ("first failover at (arrival)", secs(r["first_failover_at_s"])),
        ("shed", _count(r["shed"], "by reason", r["shed_by_reason"])),
        (
            "quota rejections (excluded from availability)",
            _count(r["quota_rejected"], "by limit", r["quota_rejected_by_limit"])
            + (f"; by consumer {_kv(r['quota_rejected_by_consumer'])}" if r["quota_rejected"] else ""),
        ),
        ("errors by type", _kv(r["errors_by_type"]) or "none"),
        ("guardrail actions", _kv(r["guardrail_actions"]) or "none"),
        ("chaos injections", f"{_kv(r['chaos_injections']) or 'none'}; injected attempts {r['injected_attempts']:,}"),
        ("attempts by outcome", _kv(r["attempts_by_outcome"]) or "none"),
    ]
    out = [table(["figure", "value"], [[a, b] for a, b in items]), ""]
    if r["breakers"]:
        rows = [
            [
                p,
                num(b["transitions"]),
                num(b["opened"]),
                secs(b["first_open_at_s"]),
                secs(b["open_s"]),
                secs(b["half_open_s"]),
                num(b["calls_while_open"]),
            ]
            for p, b in r["breakers"].items()
        ]
        headers = ["breaker", "transitions", "opened", "first opened at", "open time", "half-open time"]
        out.append(table([*headers, "upstream calls while open"], rows))
    else:
        out.append("_No breaker transitions._")
    return "\n".join(out)


def _count(n: int, what: str, parts: dict[str, Any]) -> str:
    return f"{n:,} ({what} {_kv(parts)})" if parts else f"{n:,}"


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in d.items())


def group_section(rows: list[dict[str, Any]], key: str) -> str:
    body = [
        [
            str(r[key]),
            f"{r['requests']:,}",
            pct(r["availability"]),
            f"{r['shed']:,}",
            f"{r['quota_rejected']:,}",
            secs(r["ttft_p95"]),
            secs(r["e2e_p99"]),
            f"{r['tokens_in']:,} / {r['tokens_out']:,}",
            f"{r['cost_usd']:.4f}",
        ]
        for r in rows
    ]
    headers = [
        key,
        "requests",
        "availability",
        "shed",
        "quota rej.",
        "TTFT p95",
        "e2e p99",
        "tokens in/out",
        "cost USD",
    ]
    return table(headers, body)


def locust_section(s: Summary) -> str:
    lo = s.get("locust")
    if not lo:
        return ""
    rows = [
        [
            e["type"],
            e["name"],
            num(e["requests"]),
            num(e["failures"]),
            num(e["median_ms"]),
            num(e["p95_ms"]),
            num(e["p99_ms"]),
            num(e["rps"]),
        ]
        for e in [*lo["endpoints"], *([lo["aggregated"]] if lo.get("aggregated") else [])]
    ]
    hist = lo.get("history") or {}
    pseudo = any(e["type"] == "TTFT" for e in lo["endpoints"])
    extra = (
        "\n\nRows of type TTFT are not requests: each is one stream's time to its first token, measured by the "
        "load generator; the total counts requests only."
        if pseudo
        else ""
    )
    if hist:
        rps = f", peak RPS {num(hist.get('peak_rps'))}" if "peak_rps" in hist else ""
        extra += f"\n\nPeak users {num(hist.get('peak_users'))}{rps} ({num(hist.get('samples'))} history samples)."
    fails = lo.get("failures") or []
    if fails:
        extra += "\n\nErrors locust saw (most frequent first):\n\n" + table(
            ["method", "name", "error", "count"], [[f["method"], f["name"], f["error"], num(f["count"])] for f in fails]
        )
    return (
        "## Load generator (locust)\n\n"
        + table(["type", "name", "requests", "failures", "median ms", "p95 ms", "p99 ms", "RPS"], rows)
        + extra
        + "\n"
    )


def metrics_section(s: Summary) -> str:
    """The gateway's own counters (real-time runs) next to the same figures from the request log."""
    m = s.get("metrics")
    if not m:
        return ""
    r = s["resilience"]
    rows = [
        ["client requests", num(m["requests"]), num(s["run"]["records"])],
        ["shed", num(sum(m["shed_by_reason"].values())), num(r["shed"])],
        ["quota rejections", num(m["quota_rejections"]), num(r["quota_rejected"])],
        [
            "breaker transitions (see the note above)",
            num(sum(m["breaker_transitions"].values())),
            num(len(r["breaker_transitions"])),
        ],
        [
            "upstream attempts",
            num(sum(m["upstream_attempts_by_outcome"].values())),
            num(sum(r["attempts_by_outcome"].values())),
        ],
        ["retries", num(m["retries"]), num(r["retries"])],
        ["cost USD", f"{m['cost_usd']:.4f}", f"{s['overall']['cost_usd']:.4f}"],
    ]
    extra = [
        ("requests by status", _kv(m["requests_by_status"]) or "none"),
        ("upstream attempts by outcome", _kv(m["upstream_attempts_by_outcome"]) or "none"),
        ("breaker transitions (provider/to)", _kv(m["breaker_transitions"]) or "none"),
        ("peak requests in flight", num(m["peak_in_flight"])),
        ("peak admission queue depth", num(m["peak_queue_depth"])),
        ("lowest state_store_up", num(m["min_state_store_up"])),
        ("state store failures", num(m["state_store_failures"])),
    ]
    return (
        f"## Gateway metrics (Prometheus snapshots)\n\nCounters from `metrics/{m['source']}`, gauges over "
        f"{m['snapshots']} snapshot(s). The request log column is the same figure computed by this report; for "
        "requests, attempts, shed, quota and cost a difference means lost records or traffic outside the run. "
        f"Breaker transitions differ by design: {_workers(s)} counts the transitions it saw itself, and "
        "the metric sums them, while this report merges every worker's transitions into one timeline and keeps "
        "a repeated change (same provider, same new state) once.\n\n"
        + table(["figure", "metrics", "request log"], rows)
        + "\n\n"
        + table(["figure", "value"], [[a, b] for a, b in extra])
        + "\n"
    )


def _workers(s: Summary) -> str:
    n = s["run"].get("workers")
    return f"each of the gateway's {n} workers" if n and n > 1 else "each gateway worker"


def header(s: Summary, title: str) -> str:
    sc, run = s["scenario"], s["run"]
    started = datetime.fromtimestamp(run["t0"], tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"# {title}: {sc['name']}", "", sc["description"] or "", ""]
    lines.append(
        f"Run `{run['run_id'] or '-'}` ({run['mode'] or 'mode unknown'}), started {started}, "
        f"{num(sc['duration_s'])} s, {run['records']:,} requests, seed {sc.get('seed', '-')}."
    )
    if run["mode"] == "real":
        lines.append("Real-time run: the fault timeline follows the seed; outcomes vary with OS timing.")
    return "\n".join(lines)


def render_report(s: Summary, charts: list[str]) -> str:
    parts = [
        header(s, "SLO report"),
        f"Buckets of {num(s['run']['bucket_s'])} s by arrival time; empty buckets are gaps. Quantiles: "
        f"{s['run']['quantile_method']}.",
        "## SLOs\n\n" + slo_table(s),
        "## SLO gate (make slo-check)\n\n" + gate_table(s),
        "## Expectations\n\n" + expectations_table(s),
        "## Burn-rate alerts\n\n" + alerts_section(s),
        "## Resilience\n\n" + resilience_section(s),
        "## Per consumer\n\n" + group_section(s["by_consumer"], "consumer"),
        "## Per provider (serving provider)\n\n" + group_section(s["by_provider"], "provider"),
        "## Per model\n\n" + group_section(s["by_model"], "model"),
    ]
    parts += [extra.rstrip() for extra in (locust_section(s), metrics_section(s)) if extra]
    if charts:
        parts.append("## Charts\n\n" + "\n\n".join(f"![{c[:-4]}]({c})" for c in charts))
    return "\n\n".join(parts) + "\n"
