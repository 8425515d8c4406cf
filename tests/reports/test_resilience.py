"""Retry amplification, failover share, breaker intervals and calls while open, on hand-made logs."""

from __future__ import annotations

import pytest

from reports.load import RunData, from_lines
from reports.resilience import amplification, breaker_figures, breaker_intervals, calls_while_open, failover, resilience
from tests.reports.factory import T0, attempt, lines, rec


def _run() -> RunData:
    recs = [
        rec("A", 1, "ok"),
        rec(
            "B",
            2,
            "ok",
            provider="vllm",
            attempts=[
                attempt("openai", 2, "server_error", 503),
                attempt("openai", 2.1, "timeout", None),
                attempt("vllm", 2.2),
            ],
        ),
        rec(
            "C",
            3,
            "error",
            provider=None,
            attempts=[attempt("openai", 3, "server_error", 503), attempt("vllm", 3.1, "server_error", 503)],
        ),
        rec("D", 4, "shed", provider=None, attempts=[], decisions={"shed": "queue_full"}),
        rec("E", 5, "quota_rejected", provider=None, attempts=[], decisions={"quota": "tokens_per_day"}),
        rec(
            "F", 15, "ok", provider="vllm", attempts=[attempt("openai", 15, "breaker_open", None), attempt("vllm", 15)]
        ),
        rec("G", 15.5, "ok", attempts=[attempt("openai", 15.5)]),  # a call leaking through the open breaker
        rec(
            "H",
            20.5,
            "ok",
            attempts=[attempt("openai", 20.5)],
            decisions={"chaos": [{"kind": "latency"}], "guardrail": ["max_tokens"]},
        ),
    ]
    transitions = [
        {"ts": T0 + 10, "event": "breaker_transition", "provider": "openai", "from": "closed", "to": "open"},
        {"ts": T0 + 10.2, "event": "breaker_transition", "provider": "openai", "from": "closed", "to": "open"},
        {"ts": T0 + 20, "event": "breaker_transition", "provider": "openai", "from": "open", "to": "half_open"},
        {
            "ts": T0 + 21,
            "event": "breaker_transition",
            "provider": "openai/gpt",
            "from_state": "half_open",
            "to_state": "closed",
        },
    ]
    # the events file is the breaker history; transitions noted on records are then ignored
    recs[0]["decisions"]["breaker"] = [{"key": "vllm/m", "from": "closed", "to": "open", "reason": "x"}]
    return from_lines(lines(recs), lines(transitions), meta={"started_at": T0})


def test_amplification_counts_calls_per_admitted_request() -> None:
    a = amplification(_run().requests)
    # admitted: A B C F G H (D shed, E quota-rejected); calls: 1+3+2+1+1+1 (F's breaker_open skip is no call)
    assert a["admitted_requests"] == 6 and a["upstream_calls"] == 9
    assert a["upstream_calls_per_request"] == pytest.approx(1.5)


def test_failover_share_of_requests_whose_first_choice_failed() -> None:
    f = failover(_run().requests)
    assert f["first_attempt_failed"] == 3  # B, C, F
    assert f["failed_over"] == 2  # B, F
    assert f["failover_share"] == pytest.approx(2 / 3)
    assert f["first_failover_at_s"] == pytest.approx(2)


def test_breaker_intervals_open_time_and_calls_while_open() -> None:
    run = _run()
    assert run.transitions.height == 3  # the second closed -> open (another worker) is a repeat
    iv = breaker_intervals(run.transitions, end_s=30)
    assert iv.select("state", "start", "end").rows() == [
        ("closed", 0.0, 10.0),
        ("open", 10.0, 20.0),
        ("half_open", 20.0, 21.0),
        ("closed", 21.0, 30.0),
    ]
    b = breaker_figures(run.transitions, iv)["openai"]
    assert (b["open_s"], b["half_open_s"], b["first_open_at_s"], b["opened"]) == (10.0, 1.0, 10.0, 1)
    assert calls_while_open(run.attempts, iv, "openai", grace_s=0) == 1  # G; F was skipped, H is half-open
    assert calls_while_open(run.attempts, iv, "openai", grace_s=6) == 0


def test_resilience_counts_sheds_quota_chaos_and_guardrails() -> None:
    run = _run()
    r = resilience(run.requests, run.attempts, run.transitions, end_s=30)
    assert r["shed_by_reason"] == {"queue_full": 1}
    assert r["quota_rejected_by_limit"] == {"tokens_per_day": 1}
    assert r["chaos_injections"] == {"latency": 1} and r["guardrail_actions"] == {"max_tokens": 1}
    assert r["attempts_by_outcome"]["breaker_open"] == 1
    assert r["breakers"]["openai"]["calls_while_open"] == 1  # G


def test_transitions_from_request_records_when_there_is_no_events_file() -> None:
    recs = [
        rec(
            "a", 5, "ok", decisions={"breaker": [{"key": "openai/gpt", "from": "closed", "to": "open", "reason": "r"}]}
        ),
        rec(
            "b",
            6,
            "ok",
            decisions={
                "breaker_transitions": [{"provider": "openai", "from": "open", "to": "half_open", "ts": T0 + 6.5}]
            },
        ),
    ]
    run = from_lines(lines(recs), meta={"started_at": T0})
    assert run.transitions.select("provider", "from", "to", "t").rows() == [
        ("openai", "closed", "open", 5.0),
        ("openai", "open", "half_open", 6.5),
    ]


def test_a_first_choice_skipped_by_an_open_breaker_counts_for_failover() -> None:
    skipped = {"route": {"order": ["openai", "vllm"]}, "skipped": {"openai": "breaker_open"}}
    recs = [
        rec("s", 1, "ok", provider="vllm", decisions=skipped),
        rec("n", 2, "ok", provider="vllm", decisions={"route": {"order": ["vllm", "openai"]}}),
    ]
    r = from_lines(lines(recs), meta={"started_at": T0}).requests
    assert r.select("first_provider", "first_outcome").rows() == [("openai", "breaker_open"), ("vllm", "ok")]
    f = failover(r)
    assert (f["failed_over"], f["first_attempt_failed"]) == (1, 1)


def test_the_call_that_opens_the_breaker_and_instant_probes_are_not_calls_while_open() -> None:
    """Virtual time: the failing call opens the breaker at its own start instant, and a probe that fails at once
    sends the breaker open -> half_open -> open at one instant (a zero-length half-open interval)."""
    tr = [("closed", "open", 10.0), ("open", "half_open", 20.0), ("half_open", "open", 20.0)]
    tr += [("open", "half_open", 30.0), ("half_open", "closed", 31.0)]
    events = [{"ts": T0 + t, "event": "breaker_transition", "provider": "openai", "from": a, "to": b} for a, b, t in tr]
    starts = {"opener": 10.0, "probe1": 20.0, "leak": 25.0, "probe2": 30.0, "after": 40.0}
    recs = [
        rec(rid, t, "error", provider=None, attempts=[attempt("openai", t, "server_error", 503, 0.0)])
        for rid, t in starts.items()
    ]
    run = from_lines(lines(recs), lines(events), meta={"started_at": T0})
    iv = breaker_intervals(run.transitions, end_s=50)
    assert iv.filter(iv["state"] == "open").select("start", "end").rows() == [(10.0, 20.0), (20.0, 30.0)]
    assert calls_while_open(run.attempts, iv, "openai", grace_s=0) == 1  # only the call at t=25
