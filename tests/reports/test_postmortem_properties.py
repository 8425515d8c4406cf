"""Postmortem invariants over random scenario shapes (hypothesis): faults that overlap, start at 0, last past the
run's end, or none at all. Every time to detect is >= 0 and measured from the right fault, the counts add up,
and no sentence says nothing failed when something did. Derandomized: the same shapes on every run (CI is
deterministic); run with ``--hypothesis-seed`` and without ``derandomize`` to explore further."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.load import from_lines
from reports.markdown import secs
from reports.postmortem import render_postmortem
from reports.summary import compute
from tests.reports.factory import T0, attempt, lines, rec

DURATION = 60.0
UPSTREAMS = ("openai", "vllm")


@st.composite
def faults(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.sampled_from([0.0, *range(1, 60, 7)]))
        end = draw(st.one_of(st.none(), st.floats(start + 1, DURATION * 1.5).map(lambda x: round(x, 1))))
        out.append({"upstream": draw(st.sampled_from(UPSTREAMS)), "kind": "outage", "start_s": start, "end_s": end})
    return out


def _down(faults_: list[dict[str, Any]], provider: str, t: float) -> bool:
    return any(
        f["upstream"] == provider and f["start_s"] <= t < (f["end_s"] if f["end_s"] is not None else 1e9)
        for f in faults_
    )


def _records(faults_: list[dict[str, Any]], every_s: float) -> list[dict[str, Any]]:
    """openai first; when it is down, a failed attempt there and a failover to vllm, which fails when vllm is down."""
    out = []
    for i in range(int(DURATION / every_s)):
        t = round(i * every_s, 3)
        first = "openai" if i % 4 else "vllm"
        other = "vllm" if first == "openai" else "openai"
        if not _down(faults_, first, t):
            out.append(rec(f"r{i}", t, "ok", provider=first))
        elif not _down(faults_, other, t):
            tries = [attempt(first, t, "server_error", 503, 0.01), attempt(other, t + 0.01)]
            out.append(rec(f"r{i}", t, "ok", provider=other, attempts=tries))
        else:
            tries = [attempt(first, t, "server_error", 503, 0.01), attempt(other, t + 0.01, "server_error", 503)]
            out.append(rec(f"r{i}", t, "error", provider=None, attempts=tries))
    return out


def _events(faults_: list[dict[str, Any]], delays: list[float]) -> list[dict[str, Any]]:
    """A breaker opening some delay after each fault's start (while its window lasts), closing at its end."""
    ev = []
    for f, d in zip(faults_, delays, strict=False):
        end = f["end_s"] if f["end_s"] is not None else DURATION
        if f["start_s"] + d < end:
            ev.append(_tr(f["upstream"], f["start_s"] + d, "closed", "open"))
            if end < DURATION:
                ev.append(_tr(f["upstream"], end, "open", "closed"))
    return sorted(ev, key=lambda e: e["ts"])


def _tr(provider: str, t: float, a: str, b: str) -> dict[str, Any]:
    return {"ts": T0 + t, "event": "breaker_transition", "provider": provider, "from": a, "to": b}


def _scenario(faults_: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "shape",
        "description": "a random scenario shape",
        "duration_s": DURATION,
        "faults": faults_,
        "slo": {"availability": 0.99, "ttft_p95_s": 2.0},
        "expectations": [],
    }


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults_=faults(),
    delays=st.lists(st.floats(0, 8).map(lambda x: round(x, 2)), min_size=3, max_size=3),
    every_s=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_postmortem_invariants(faults_: list[dict[str, Any]], delays: list[float], every_s: float) -> None:
    records, events = _records(faults_, every_s), _events(faults_, delays)
    run = from_lines(lines(records), lines(events), _scenario(faults_), {"started_at": T0})
    s = compute(run).summary
    text = render_postmortem(s, [])
    imp, res = s["impact"], s["resilience"]

    # counts add up
    assert imp["failed_requests"] == sum(imp["failed_by_outcome"].values())
    assert imp["failed_requests"] == sum(1 for r in records if r["outcome"] != "ok")
    if faults_:
        fw = s["fault_windows"]
        assert fw is not None
        assert fw["during_faults"]["requests"] + fw["outside_faults"]["requests"] == len(records)
        assert ("outside every fault window" in text) == (fw["outside_faults"]["requests"] > 0)
    else:
        assert s["fault_windows"] is None and not s["fault_impact"]

    # per fault: from its own start, inside its own window
    assert len(s["fault_impact"]) == len(faults_)
    for fi in s["fault_impact"]:
        start = fi["start_s"]
        end = fi["end_s"] if fi["end_s"] is not None else float("inf")
        inside = [r for r in records if start <= r["ts_arrival"] - T0 < end]
        assert fi["requests"] == len(inside)
        assert fi["failed"] == sum(1 for r in inside if r["outcome"] != "ok")
        for key in ("breaker_delay_s", "failover_delay_s", "page_delay_s"):
            assert fi[key] is None or fi[key] >= 0
        opens = sorted(  # the breaker history as the report keeps it (a repeated opening kept once)
            tr["t"]
            for tr in res["breaker_transitions"]
            if tr["provider"] == fi["upstream"] and tr["to"] == "open" and start <= tr["t"] < end
        )
        assert fi["breaker_opened_at_s"] == (pytest.approx(opens[0], abs=1e-5) if opens else None)
        if fi["breaker_delay_s"] is not None:
            assert fi["breaker_opened_at_s"] - fi["breaker_delay_s"] == pytest.approx(start, abs=1e-5)
            assert f"{secs(fi['breaker_delay_s'])} after this fault started" in text

    # no sentence saying nothing failed when something did
    if imp["failed_requests"]:
        assert "Clients saw no failures" not in text
        assert "- Failed requests: 0 " not in text
        assert "; 0 requests failed." not in text
        assert "every request whose first choice failed was served by another provider" not in text
    if "nothing was shed" in text:
        assert res["shed"] == 0 and res["failed_over"] == res["first_attempt_failed"]

    # each fault's end in the right words
    for f in faults_:
        label = f"{f['kind']} on `{f['upstream']}`"
        if f["end_s"] is None or f["end_s"] >= DURATION:
            assert f"{label} lasted to the end of the run" in text
        else:
            assert f"{label} ended at" in text
