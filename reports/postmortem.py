"""``postmortem.md`` after the Google SRE template, every statement derived from the summary dict."""

from __future__ import annotations

from typing import Any

from reports.markdown import header, num, pct, secs, slo_table, table


def _fault_text(f: dict[str, Any]) -> str:
    params = {k: v for k, v in f.items() if k not in ("upstream", "kind", "start_s", "end_s") and v is not None}
    extra = ", ".join(f"{k}={v}" for k, v in params.items())
    end = f"{f['end_s']:g} s" if f["end_s"] is not None else "the end of the run"
    return f"{f.get('kind', 'fault')} on `{f.get('upstream', '?')}` from {f['start_s']:g} s to {end}" + (
        f" ({extra})" if extra else ""
    )


def timeline(s: dict[str, Any]) -> list[tuple[float, str]]:
    ev: list[tuple[float, str]] = []
    for f in s["scenario"]["faults"]:
        ev.append((f["start_s"], f"fault starts: {_fault_text(f)}"))
        if f["end_s"] is not None:
            ev.append((f["end_s"], f"fault ends: {f.get('kind', 'fault')} on `{f.get('upstream', '?')}`"))
    imp, res = s["impact"], s["resilience"]
    if imp["first_failure_at_s"] is not None:
        ev.append((imp["first_failure_at_s"], "first failed request ends"))
        ev.append((imp["last_failure_at_s"], "last failed request ends"))
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


def lessons(s: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    well: list[str] = []
    wrong: list[str] = []
    lucky: list[str] = []
    f, res, imp = s["figures"], s["resilience"], s["impact"]
    for r in s["slos"]:
        achieved = pct(r["achieved"]) if r["slo"] == "availability" else secs(r["achieved"])
        (well if r["verdict"] == "met" else wrong).append(
            f"{r['title']}: achieved {achieved}, {pct(r['error_budget_consumed'], 1)} of the error budget used."
        )
    for e in s["expectations"]:
        (well if e["held"] else wrong).append(
            f'Expectation "{e["expectation"]}" {"held" if e["held"] else "broke"}: {e["detail"]}.'
        )
    share = f["failover_share"]
    if share is not None and res["first_attempt_failed"]:
        (well if share >= 0.9 else wrong).append(
            f"Failover saved {pct(share, 1)} of the {res['first_attempt_failed']:,} requests whose first choice failed."
        )
    amp = f["upstream_calls_per_request"]
    if amp is not None:
        (well if amp <= 1.2 else wrong).append(f"Upstream calls per client request: {num(amp)}.")
    rules = s["alerts"]["availability"]["rules"]
    fired = [r for r in rules if r["time_to_detect_s"] is not None]
    if s["scenario"]["faults"]:
        if fired:
            best = min(fired, key=lambda r: r["time_to_detect_s"])
            well.append(
                f"Page alert {best['rule']} would have fired {secs(best['time_to_detect_s'])} after the "
                f"fault started (~{secs(best['time_to_detect_real_s'])} at production time scale)."
            )
        elif any(r["verdict"] == "broken" for r in s["slos"]):
            wrong.append("No page alert would have fired although an SLO broke: a detection gap.")
        elif _masked(s):
            well.append(
                "Clients saw no failures, so the SLO burn-rate alerts rightly stayed silent; the fault showed only "
                "behind the gateway (failed upstream calls, breaker state)."
            )
        else:
            lucky.append(
                "No page alert would have fired: the burn stayed under the paging thresholds. The same "
                "error rate over a longer fault would page; this one was short enough not to."
            )
    if any(r["fired_before_fault"] for r in rules):
        wrong.append("A page alert fired before any fault was injected (a false page).")
    if res["shed"]:
        wrong.append(f"{res['shed']:,} requests were shed ({', '.join(res['shed_by_reason']) or 'no reason'}).")
    elif res["failed_over"]:
        lucky.append("The failover target had the headroom to absorb the failed-over traffic: nothing was shed.")
    consumed = f["error_budget_consumed"]
    if consumed is not None and 0.5 <= consumed <= 1.0:
        lucky.append(f"The run stayed within its availability budget, but used {pct(consumed, 1)} of it.")
    consumers = [c for c in s["by_consumer"] if c["valid"]]
    if len(imp["consumers_affected"]) == 1 and len(consumers) > 1:
        lucky.append(f"Only one of {len(consumers)} consumers saw failures: {imp['consumers_affected'][0]}.")
    if (
        s["scenario"]["faults"]
        and imp["failed_requests"]
        and imp["recovered_at_s"] is None
        and any(r["verdict"] == "broken" for r in s["slos"])
    ):
        wrong.append("Availability had not recovered to its objective by the end of the run.")
    return well, wrong, lucky or ["Nothing identified from the figures."]


def _never_below(s: dict[str, Any]) -> bool:
    faults = s["scenario"]["faults"]
    start = faults[0]["start_s"] if faults else 0.0
    objective = s["slo"]["availability"]
    return all(
        b["availability"] is None or b["availability"] >= objective for b in s["buckets"] if b["t_start"] >= start
    )


def _masked(s: dict[str, Any]) -> bool:
    """The fault hit the upstreams but no client request failed."""
    return bool(s["impact"]["failed_requests"] == 0 and s["resilience"]["first_attempt_failed"] > 0)


def gateway_detection(s: dict[str, Any]) -> list[str]:
    """When the gateway itself noticed: each breaker's first opening and the first failover, after the fault."""
    faults = s["scenario"]["faults"]
    if not faults:
        return []
    start = faults[0]["start_s"]
    out: list[str] = []
    for tr in s["resilience"]["breaker_transitions"]:
        if tr["to"] == "open" and tr["t"] >= start and not any(tr["provider"] in line for line in out):
            out.append(
                f"- The `{tr['provider']}` breaker opened at {secs(tr['t'])}, {secs(tr['t'] - start)} after the "
                "first fault started: from then on the gateway skipped the provider without calling it."
            )
    first = s["resilience"]["first_failover_at_s"]
    if first is not None and first >= start:
        out.append(f"- The first request was served by failover at {secs(first)} ({secs(first - start)} after).")
    return out


def action_items(s: dict[str, Any]) -> list[list[str]]:
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
        if _masked(s):
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
        [f"Investigate budget `{b['budget']}` broken (value {num(b['value'])}, limit {num(b['limit'])})", "prevent"]
        for b in s["ci_budgets"]
        if not b["held"]
    ]
    items.append(["Keep this scenario in `make slo-check` so a regression fails CI", "process"])
    return [[text, kind, "gateway on-call", "-"] for text, kind in items]


def _upstream_impact(s: dict[str, Any]) -> list[str]:
    res = s["resilience"]
    if not res["first_attempt_failed"]:
        return []
    return [
        f"- Behind the gateway: {res['first_attempt_failed']:,} requests' first-choice provider failed or was skipped "
        f"by an open breaker; {res['failed_over']:,} of them were served by another provider (failover share "
        f"{pct(res['failover_share'], 1)}). Upstream calls per client request: "
        f"{num(res['upstream_calls_per_request'])}."
    ]


def _window_table(s: dict[str, Any]) -> list[str]:
    fw = s.get("fault_windows")
    if not fw:
        return []
    rows = [
        [
            label,
            f"{r['requests']:,}",
            pct(r["availability"]),
            f"{r['bad']:,}",
            secs(r["ttft_p50"]),
            secs(r["ttft_p95"]),
            secs(r["e2e_p99"]),
        ]
        for label, r in (("during fault windows", fw["during_faults"]), ("outside fault windows", fw["outside_faults"]))
    ]
    return [
        "",
        "Requests by arrival inside or outside the fault windows:",
        "",
        table(["requests arriving", "requests", "availability", "failed", "TTFT p50", "TTFT p95", "e2e p99"], rows),
    ]


def render_postmortem(
    s: dict[str, Any], charts: list[str], *, link_prefix: str = "", supporting: str = "`report.md`, `summary.json`"
) -> str:
    """The postmortem; charts are linked as ``link_prefix + name`` and ``supporting`` names the full figures."""
    sc, f, imp = s["scenario"], s["figures"], s["impact"]
    faults = sc["faults"]
    slo_broken = [r["title"] for r in s["slos"] if r["verdict"] == "broken"]
    summary = (
        f"{'; '.join(_fault_text(x) for x in faults) or 'No fault was injected'}. The gateway served "
        f"{pct(f['availability'])} of valid requests (objective {pct(s['slo']['availability'])}) and used "
        f"{pct(f['error_budget_consumed'], 1)} of the availability error budget; "
        f"{imp['failed_requests']:,} requests failed. "
        + (f"SLOs broken: {', '.join(slo_broken)}." if slo_broken else "Every SLO was met.")
        + (
            f" Failover served {s['resilience']['failed_over']:,} of the {s['resilience']['first_attempt_failed']:,} "
            "requests whose first-choice provider failed."
            if s["resilience"]["first_attempt_failed"]
            else ""
        )
    )
    duration = (
        secs(imp["last_failure_at_s"] - imp["first_failure_at_s"]) if imp["first_failure_at_s"] is not None else "0 s"
    )
    impact = [
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
    rules = [r for r in s["alerts"]["availability"]["rules"]]
    detection = [
        f"Burn-rate alerts replayed over the run (time compression k = "
        f"{num(s['alerts']['availability']['time_compression'])}; see report.md):",
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
        detection += ["", "The gateway's own detection (request log and breaker events):", "", *own]
    res = s["resilience"]
    closes = [tr for tr in res["breaker_transitions"] if tr["to"] == "closed"]
    resolution = [
        "- The injected fault ended at "
        + (", ".join(secs(x["end_s"]) for x in faults if x["end_s"] is not None) or "n/a")
        + " (the scenario's timeline; no operator action).",
        "- Breakers closed again at: "
        + (", ".join(f"{secs(t['t'])} ({t['provider']})" for t in closes) or "n/a")
        + ".",
        "- Recovery (every later bucket meets the availability objective): "
        + (
            secs(imp["recovered_at_s"])
            if imp["recovered_at_s"] is not None
            else "not needed: no bucket after the fault fell below the objective"
            if not imp["failed_requests"] or _never_below(s)
            else "not reached by the end of the run"
        )
        + ".",
    ]
    well, wrong, lucky = lessons(s)
    parts = [
        header(s, "Postmortem"),
        "Status: generated from the run's request log (blameless; review and assign the action items).",
        "## Summary\n\n" + summary,
        "## Impact\n\n" + "\n".join(impact),
        "## Root cause and trigger\n\n"
        + (
            "\n".join(f"- Root cause: {_fault_text(x)}, injected by the scenario." for x in faults)
            or "- None injected."
        )
        + f"\n- Trigger: the first fault starting at {secs(faults[0]['start_s']) if faults else 'n/a'}.",
        "## Detection\n\n" + "\n".join(detection),
        "## Resolution\n\n" + "\n".join(resolution),
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
