"""``postmortem.md`` after the Google SRE template, every statement derived from the summary dict."""

from __future__ import annotations

from typing import Any

from reports.faults import fault_label
from reports.lessons import availability_row, lessons, masked
from reports.markdown import header, num, pct, secs, slo_table, table
from reports.summary_models import Summary

STATE_STORE = "state_store"  # the scenario's name for the shared state store: a fault target with no breaker


def _until_end(f: dict[str, Any], duration: float) -> bool:
    return f["end_s"] is None or f["end_s"] >= duration - 1e-9


def _fault_text(f: dict[str, Any], duration: float) -> str:
    params = {k: v for k, v in f.items() if k not in ("upstream", "kind", "start_s", "end_s") and v is not None}
    extra = ", ".join(f"{k}={v}" for k, v in params.items())
    end = "the end of the run" if _until_end(f, duration) else f"{f['end_s']:g} s"
    return f"{fault_label(f)} from {f['start_s']:g} s to {end}" + (f" ({extra})" if extra else "")


def timeline(s: Summary) -> list[tuple[float, str]]:
    ev: list[tuple[float, str]] = []
    duration = s["scenario"]["duration_s"]
    for f in s["scenario"]["faults"]:
        ev.append((f["start_s"], f"fault starts: {_fault_text(f, duration)}"))
        if not _until_end(f, duration):
            ev.append((f["end_s"], f"fault ends: {fault_label(f)}"))
    imp, res = s["impact"], s["resilience"]
    first, last = imp["first_failure_at_s"], imp["last_failure_at_s"]
    if first is not None and last is not None:
        ev.append((first, "first failed request ends"))
        ev.append((last, "last failed request ends"))
    ev += [
        (tr["t"], f"`{tr['provider']}` breaker {tr['from'] or '?'} -> {tr['to']}") for tr in res["breaker_transitions"]
    ]
    if res["first_failover_at_s"] is not None:
        ev.append((res["first_failover_at_s"], "first request served after failover"))
    for sli, block in s["alerts"].items():
        for r in block["rules"]:
            for start, stop in r["firing"]:
                ev.append((start, f"page alert {r['rule']} on {sli} fires"))
                if stop is not None:
                    ev.append((stop, f"page alert {r['rule']} on {sli} clears"))
    if imp["recovered_at_s"] is not None:
        ev.append((imp["recovered_at_s"], "recovered: every later bucket meets the availability objective"))
    return sorted(ev, key=lambda e: e[0])  # stable: same-instant breaker transitions keep their logged order


def _never_below(s: Summary) -> bool:
    faults = s["scenario"]["faults"]
    start = faults[0]["start_s"] if faults else 0.0
    objective = s["slo"]["availability"]
    return all(
        b["availability"] is None or b["availability"] >= objective for b in s["buckets"] if b["t_start"] >= start
    )


def _fault_detection(fi: dict[str, Any], has_breaker: bool) -> str:
    """What the gateway and the alerts noticed of one fault, every delay measured from that fault's start."""
    parts = []
    if has_breaker:
        parts.append(
            f"the `{fi['upstream']}` breaker opened at {secs(fi['breaker_opened_at_s'])}, "
            f"{secs(fi['breaker_delay_s'])} after this fault started"
            if fi["breaker_opened_at_s"] is not None
            else f"the `{fi['upstream']}` breaker did not open during it"
        )
        if fi["first_failover_at_s"] is not None:
            parts.append(
                f"the first request failed over off `{fi['upstream']}` arrived at {secs(fi['first_failover_at_s'])} "
                f"({secs(fi['failover_delay_s'])} after)"
            )
    if fi["page_already_firing"]:
        parts.append("a page alert was already firing when it started (set off earlier)")
    elif fi["page_at_s"] is not None:
        parts.append(
            f"the first page alert while it lasted fired at {secs(fi['page_at_s'])} ({secs(fi['page_delay_s'])} after)"
        )
    else:
        parts.append("no page alert fired during it")
    overlap = f", overlapping {', '.join(fi['other_active'])}" if fi["other_active"] else ""
    return f"- {fi['fault']} (from {secs(fi['start_s'])}{overlap}): " + "; ".join(parts) + "."


def gateway_detection(s: Summary) -> list[str]:
    """Per fault, from its own start: its upstream's breaker opening, the first failover off it, the first page.

    A breaker that opened on a provider with no fault of its own (a failover target overwhelmed, say) is listed
    apart with the faults active at that moment.
    """
    faults = s["scenario"]["faults"]
    if not faults:
        return []
    out = [_fault_detection(fi, fi["upstream"] != STATE_STORE) for fi in s.get("fault_impact") or []]
    faulted = {fi["upstream"] for fi in s.get("fault_impact") or []}
    seen: set[str] = set()
    for tr in s["resilience"]["breaker_transitions"]:
        p = tr["provider"]
        if tr["to"] != "open" or p in faulted or p in seen:
            continue
        seen.add(p)
        active = [
            fi["fault"]
            for fi in s.get("fault_impact") or []
            if fi["start_s"] <= tr["t"] and (fi["end_s"] is None or tr["t"] < fi["end_s"])
        ]
        during = f"while {', '.join(active)} was active" if active else "with no fault active"
        out.append(
            f"- The `{p}` breaker, on a provider with no fault injected, first opened at {secs(tr['t'])}, {during}."
        )
    return out


def action_items(s: Summary) -> list[list[str]]:
    items: list[list[str]] = [
        [f"Bring {r['title']} back within its objective under this fault", "mitigate"]
        for r in s["slos"]
        if r["verdict"] == "broken"
    ]
    items += [
        [f'Fix the broken expectation "{e["expectation"]}" ({e["detail"]})', "prevent"]
        for e in s["expectations"]
        if not e["held"]
    ]
    rules = s["alerts"]["availability"]["rules"]
    if s["scenario"]["faults"] and not any(r["time_to_detect_s"] is not None for r in rules):
        if masked(s):
            items.append(
                [
                    "Alert (ticket, not page) on provider health - breaker open, upstream failure ratio - so a "
                    "provider outage that failover hides from the SLOs is still seen",
                    "detect",
                ]
            )
        else:
            items.append(["Check that burn-rate alerting catches this failure mode at a longer duration", "detect"])
    if any(r["fired_before_fault"] for r in rules):
        items.append(["Find why a page fired with no fault injected (false page)", "detect"])
    items += [
        [
            f"{b['title']} used {pct((b['used_pct'] or 0) / 100, 1)} of its error budget, above the "
            f"{pct(b['allowed_pct'] / 100, 1)} this scenario allows (make slo-check fails)",
            "prevent",
        ]
        for b in s["slo_gate"]["budgets"]
        if not b["held"]
    ]
    items.append(["Keep this scenario in `make slo-check` so a regression fails CI", "process"])
    return [[text, kind, "gateway on-call", "-"] for text, kind in items]


def _upstream_impact(s: Summary) -> list[str]:
    res = s["resilience"]
    if not res["first_attempt_failed"]:
        return []
    return [
        f"- Behind the gateway, over the whole run: {res['first_attempt_failed']:,} requests' first-choice provider "
        "failed or was skipped "
        f"by an open breaker; {res['failed_over']:,} of them were served by another provider (failover share "
        f"{pct(res['failover_share'], 1)}). Upstream calls per client request: "
        f"{num(res['upstream_calls_per_request'])}."
    ]


def _row(label: str, r: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{r['requests']:,}",
        pct(r["availability"]),
        f"{r['bad']:,}",
        secs(r["ttft_p50"]),
        secs(r["ttft_p95"]),
        secs(r["e2e_p99"]),
    ]


def _window_table(s: Summary) -> list[str]:
    """Requests by arrival: in each fault's own window, in any of them, and outside all of them."""
    fw = s.get("fault_windows")
    if not fw:
        return []
    duration = s["scenario"]["duration_s"]
    rows = [
        _row(
            f"{fi['fault']} [{fi['start_s']:g}, {'end' if fi['until_end_of_run'] else format(fi['end_s'], 'g')})",
            {**fi, "bad": fi["failed"]},
        )
        for fi in s.get("fault_impact") or []
    ]
    if len(rows) > 1:
        rows.append(_row("inside any fault window", fw["during_faults"]))
    outside = fw["outside_faults"]
    if outside["requests"]:
        rows.append(_row("outside every fault window", outside))
    note = (
        ["", f"No request arrived outside the fault windows: together they cover the whole {duration:g} s run."]
        if not outside["requests"]
        else []
    )
    overlap = any(fi["other_active"] for fi in s.get("fault_impact") or [])
    return [
        "",
        "Requests by arrival inside each fault's window"
        + (" (the windows overlap: a request inside two counts in both rows)" if overlap else "")
        + ":",
        "",
        table(["requests arriving", "requests", "availability", "failed", "TTFT p50", "TTFT p95", "e2e p99"], rows),
        *note,
    ]


def _summary_text(s: Summary) -> str:
    sc, f, imp, res = s["scenario"], s["figures"], s["impact"], s["resilience"]
    slo_broken = [r["title"] for r in s["slos"] if r["verdict"] == "broken"]
    faults = "; ".join(_fault_text(x, sc["duration_s"]) for x in sc["faults"]) or "No fault was injected"
    return (
        f"{faults}. The gateway served {pct(f['availability'])} of valid requests (objective "
        f"{pct(s['slo']['availability'])}) and used {pct(availability_row(s)['error_budget_consumed'], 1)} of the "
        f"availability error budget; {imp['failed_requests']:,} requests failed. "
        + (f"SLOs broken: {', '.join(slo_broken)}." if slo_broken else "Every SLO was met.")
        + (
            f" Failover served {res['failed_over']:,} of the {res['first_attempt_failed']:,} requests whose "
            "first-choice provider failed."
            if res["first_attempt_failed"]
            else ""
        )
    )


def _impact_lines(s: Summary) -> list[str]:
    f, imp = s["figures"], s["impact"]
    first, last = imp["first_failure_at_s"], imp["last_failure_at_s"]
    duration = secs(last - first) if first is not None and last is not None else "0 s"
    return [
        f"- Failed requests: {imp['failed_requests']:,} "
        f"({', '.join(f'{k}: {v:,}' for k, v in imp['failed_by_outcome'].items()) or 'none'}).",
        f"- Consumers affected: {', '.join(imp['consumers_affected']) or 'none'}.",
        f"- Duration of impact (first to last failed request): {duration}.",
        f"- Quota rejections (consumers over their own limits, not counted as failures): {f['quota_rejected']:,}.",
        *_upstream_impact(s),
        "",
        slo_table(s),
        *_window_table(s),
    ]


def _detection_lines(s: Summary) -> list[str]:
    faults = s["scenario"]["faults"]
    first = f"the first fault's start ({secs(faults[0]['start_s'])})" if faults else "the run start"
    rules = s["alerts"]["availability"]["rules"]
    lines = [
        f"Burn-rate alerts replayed over the run (time compression k = "
        f"{num(s['alerts']['availability']['time_compression'])}; see report.md). Time to detect is measured from "
        f"{first}:",
        "",
        table(
            ["rule", "fired at (run s)", "time to detect", "at production time scale"],
            [
                [
                    r["rule"],
                    num(r["fired_at_s"], 5) if r["fired"] else "never",
                    secs(r["time_to_detect_s"]),
                    secs(r["time_to_detect_real_s"]),
                ]
                for r in rules
            ],
        ),
    ]
    own = gateway_detection(s)
    if own:
        lines += ["", "Per fault, measured from that fault's own start (request log and breaker events):", "", *own]
    return lines


def _resolution_lines(s: Summary) -> list[str]:
    sc, imp = s["scenario"], s["impact"]
    ends = [
        f"{fault_label(x)} lasted to the end of the run ({secs(sc['duration_s'])})"
        if _until_end(x, sc["duration_s"])
        else f"{fault_label(x)} ended at {secs(x['end_s'])}"
        for x in sorted(sc["faults"], key=lambda x: x["end_s"] if x["end_s"] is not None else float("inf"))
    ]
    closes = [tr for tr in s["resilience"]["breaker_transitions"] if tr["to"] == "closed"]
    recovery = (
        secs(imp["recovered_at_s"])
        if imp["recovered_at_s"] is not None
        else "not needed: no bucket after the fault fell below the objective"
        if not imp["failed_requests"] or _never_below(s)
        else "not reached by the end of the run"
    )
    return [
        "- The injected faults (the scenario's timeline; no operator action): " + ("; ".join(ends) or "none") + ".",
        "- Breakers closed again at: "
        + (", ".join(f"{secs(t['t'])} ({t['provider']})" for t in closes) or "n/a")
        + ".",
        f"- Recovery (every later bucket meets the availability objective): {recovery}.",
    ]


def render_postmortem(
    s: Summary, charts: list[str], *, link_prefix: str = "", supporting: str = "`report.md`, `summary.json`"
) -> str:
    """The postmortem; charts are linked as ``link_prefix + name`` and ``supporting`` names the full figures."""
    faults, duration = s["scenario"]["faults"], s["scenario"]["duration_s"]
    well, wrong, lucky = lessons(s)
    parts = [
        header(s, "Postmortem"),
        "Status: generated from the run's request log (blameless; review and assign the action items).",
        "## Summary\n\n" + _summary_text(s),
        "## Impact\n\n" + "\n".join(_impact_lines(s)),
        "## Root cause and trigger\n\n"
        + (
            "\n".join(f"- Root cause: {_fault_text(x, duration)}, injected by the scenario." for x in faults)
            or "- None injected."
        )
        + f"\n- Trigger: the first fault starting at {secs(faults[0]['start_s']) if faults else 'n/a'}.",
        "## Detection\n\n" + "\n".join(_detection_lines(s)),
        "## Resolution\n\n" + "\n".join(_resolution_lines(s)),
        "## Timeline (run seconds)\n\n" + table(["t", "event"], [[f"{t:.3f}", e] for t, e in timeline(s)]),
        "## Lessons learned\n\n### What went well\n\n"
        + "\n".join(f"- {x}" for x in well or ["Nothing."])
        + "\n\n### What went wrong\n\n"
        + "\n".join(f"- {x}" for x in wrong or ["Nothing."])
        + "\n\n### Where we got lucky\n\n"
        + "\n".join(f"- {x}" for x in lucky),
        "## Action items\n\n" + table(["action", "type", "owner", "tracking"], action_items(s)),
        f"## Supporting information\n\n- Full figures: {supporting}.\n"
        + "\n".join(f"- ![{c[:-4]}]({link_prefix}{c})" for c in charts),
    ]
    return "\n\n".join(parts) + "\n"
