"""Postmortem statements derived from the figures, on hand-made logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.lessons import lessons
from reports.load import from_lines
from reports.postmortem import action_items, gateway_detection, render_postmortem, timeline
from reports.summary import compute
from reports.summary_models import Summary
from tests.reports.factory import T0, attempt, lines, outage_scenario, rec

FAILOVER = [attempt("openai", 65, "server_error", 503, 0.0), attempt("vllm", 65)]


def _summary(records: list[dict[str, Any]], events: Sequence[dict[str, Any]] = ()) -> Summary:
    scenario = outage_scenario(expectations=[])
    return compute(from_lines(lines(records), lines(list(events)), scenario, {"started_at": T0})).summary


def _transition(t: float, a: str, b: str) -> dict[str, Any]:
    return {"ts": T0 + t, "event": "breaker_transition", "provider": "openai", "from": a, "to": b}


def test_a_fault_hidden_by_failover_is_no_page_and_asks_for_a_provider_health_alert() -> None:
    recs = [rec(f"a{i}", i * 2.0, "ok") for i in range(90)]
    recs.append(rec("f", 65, "ok", provider="vllm", attempts=FAILOVER))
    s = _summary(recs, [_transition(66, "closed", "open"), _transition(100, "open", "closed")])
    well, wrong, _lucky = lessons(s)
    assert any(x.startswith("Clients saw no failures") for x in well)
    assert not any("detection gap" in x for x in wrong)
    assert any(kind == "detect" and "provider health" in text for text, kind, *_ in action_items(s))
    assert gateway_detection(s) == [
        "- outage on `openai` (from 60.00 s): the `openai` breaker opened at 66.00 s, 6.00 s after this fault "
        "started; the first request failed over off `openai` arrived at 65.00 s (5.00 s after); no page alert "
        "fired during it."
    ]
    assert "not needed: no bucket after the fault fell below the objective" in render_postmortem(s, [])


def test_timeline_keeps_same_instant_transitions_in_logged_order() -> None:
    events = [_transition(70, "closed", "open"), _transition(80, "open", "half_open")]
    events += [_transition(80, "half_open", "open"), _transition(90, "open", "half_open")]
    s = _summary([rec("a", 1, "ok")], events)
    at_80 = [e for t, e in timeline(s) if t == 80]
    assert at_80 == ["`openai` breaker open -> half_open", "`openai` breaker half_open -> open"]


def test_one_affected_consumer_is_luck_only_when_there_are_others() -> None:
    failed = rec("e", 66, "error", provider=None, consumer="alice")
    alone = _summary([rec("a", 1, "ok"), failed])
    assert not any("consumers saw failures" in x for x in lessons(alone)[2])
    others = _summary([rec("a", 1, "ok"), rec("b", 2, "ok", consumer="bob"), failed])
    assert "Only one of 2 consumers saw failures: alice." in lessons(others)[2]


def test_with_one_provider_failover_is_not_called_a_failure_to_save() -> None:
    failing = [attempt("openai", 60 + i, "server_error", 503, 0.01) for i in range(5)]
    recs = [rec(f"ok{i}", i, "ok") for i in range(50)]
    recs += [rec(f"e{i}", 60 + i, "error", provider=None, attempts=[a]) for i, a in enumerate(failing)]
    _well, wrong, _lucky = lessons(_summary(recs))
    assert "No failover was possible: `openai` was the only provider called, so the 5 requests whose first " in (
        " ".join(wrong)
    )
    assert not any(x.startswith("Failover saved") for x in wrong)
