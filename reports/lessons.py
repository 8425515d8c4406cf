"""The lessons of a postmortem ("what went well / wrong / where we got lucky"): rules over the summary's figures.

Each statement is derived from the figures it names and is never made when they say otherwise (see
docs/REPORTS.md for the rules and tests/reports/test_postmortem_properties.py for the invariants).
"""

from __future__ import annotations

from reports.faults import fault_label
from reports.markdown import num, pct, secs
from reports.summary_models import AlertRule, SloRow, Summary


def availability_row(s: Summary) -> SloRow:
    return next(r for r in s["slos"] if r["slo"] == "availability")


def masked(s: Summary) -> bool:
    """The fault hit the upstreams but no client request failed."""
    return bool(s["impact"]["failed_requests"] == 0 and s["resilience"]["first_attempt_failed"] > 0)


def _page_lesson(s: Summary, rule: AlertRule) -> str:
    """When the first page fired, from the first fault's start and, with several faults, from the latest fault
    that started before it (the one it most likely answers)."""
    faults = s["scenario"]["faults"]
    at = faults[0]["start_s"] + rule["time_to_detect_s"]
    text = (
        f"Page alert {rule['rule']} would have fired at {secs(at)}, {secs(rule['time_to_detect_s'])} after the "
        f"first fault started at {secs(faults[0]['start_s'])} (~{secs(rule['time_to_detect_real_s'])} at "
        "production time scale)"
    )
    before = [f for f in faults if f["start_s"] <= at]
    latest = max(before, key=lambda f: f["start_s"]) if before else None
    if latest is not None and latest["start_s"] > faults[0]["start_s"]:
        text += f"; {secs(at - latest['start_s'])} after {fault_label(latest)} started, the latest fault before it"
    return text + "."


# One flat list of independent rules, each a condition on the summary and its sentence: splitting it would
# scatter the rules, not simplify them.
def lessons(s: Summary) -> tuple[list[str], list[str], list[str]]:  # noqa: C901
    well: list[str] = []
    wrong: list[str] = []
    lucky: list[str] = []
    f, res, imp = s["figures"], s["resilience"], s["impact"]
    faults = s["scenario"]["faults"]
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
    called = sorted({str(p["provider"]) for p in res["upstream_calls_by_provider"]})
    if share is not None and res["first_attempt_failed"] and len(called) == 1 and not res["failed_over"]:
        wrong.append(
            f"No failover was possible: `{called[0]}` was the only provider called, so the "
            f"{res['first_attempt_failed']:,} requests whose first choice failed had nowhere else to go."
        )
    elif share is not None and res["first_attempt_failed"]:
        (well if share >= 0.9 else wrong).append(
            f"Failover saved {pct(share, 1)} of the {res['first_attempt_failed']:,} requests whose first choice failed "
            "(whole run)."
        )
    amp = f["upstream_calls_per_request"]
    if amp is not None:
        (well if amp <= 1.2 else wrong).append(f"Upstream calls per client request: {num(amp)}.")
    rules = s["alerts"]["availability"]["rules"]
    fired = [(ttd, r) for r in rules if (ttd := r["time_to_detect_s"]) is not None]
    if faults:
        if fired:
            well.append(_page_lesson(s, min(fired, key=lambda p: p[0])[1]))
        elif any(r["verdict"] == "broken" for r in s["slos"]):
            wrong.append("No page alert would have fired although an SLO broke: a detection gap.")
        elif masked(s):
            well.append(
                "Clients saw no failures, so the SLO burn-rate alerts rightly stayed silent; the fault showed only "
                "behind the gateway (failed upstream calls, breaker state)."
            )
        elif imp["failed_requests"]:
            lucky.append(
                f"No page alert would have fired: {imp['failed_requests']:,} requests failed, but the burn stayed "
                "under the paging thresholds. The same error rate over a longer fault would page."
            )
    if any(r["fired_before_fault"] for r in rules):
        wrong.append("A page alert fired before any fault was injected (a false page).")
    if res["shed"]:
        wrong.append(f"{res['shed']:,} requests were shed ({', '.join(res['shed_by_reason']) or 'no reason'}).")
    elif res["failed_over"] and res["failed_over"] == res["first_attempt_failed"]:
        lucky.append(
            "The failover targets had the headroom to absorb the failed-over traffic: every request whose first "
            "choice failed was served by another provider, and nothing was shed."
        )
    consumed = availability_row(s)["error_budget_consumed"]
    if consumed is not None and 0.5 <= consumed <= 1.0:
        lucky.append(f"The run stayed within its availability budget, but used {pct(consumed, 1)} of it.")
    consumers = [c for c in s["by_consumer"] if c["valid"]]
    if len(imp["consumers_affected"]) == 1 and len(consumers) > 1:
        lucky.append(f"Only one of {len(consumers)} consumers saw failures: {imp['consumers_affected'][0]}.")
    if (
        faults
        and imp["failed_requests"]
        and imp["recovered_at_s"] is None
        and any(r["verdict"] == "broken" for r in s["slos"])
    ):
        wrong.append("Availability had not recovered to its objective by the end of the run.")
    return well, wrong, lucky or ["Nothing identified from the figures."]
