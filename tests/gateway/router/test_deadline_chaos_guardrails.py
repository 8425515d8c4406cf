from __future__ import annotations

from typing import Any, Literal

import pytest

from gateway.adapters.base import AttemptTimeouts
from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamStreamTimeout,
    UpstreamTimeout,
)
from gateway.errors import DeadlineExceeded, InvalidRequest
from gateway.rng import Rng
from gateway.router.chaos import Chaos, injected_error
from gateway.router.deadline import (
    AttemptLimits,
    DeadlineReached,
    attempt_timeouts,
    cut_by_deadline,
    request_deadline,
)
from gateway.router.guardrails import Guardrails
from gateway.settings.router import ChaosRule, ChaosSettings, GuardrailSettings, TimeoutSettings

T = TimeoutSettings(connect_s=2, first_byte_s=30, stream_idle_s=15, request_deadline_s=60)


@pytest.mark.parametrize(("header", "deadline"), [(None, 160.0), ("5", 105.0), ("0.5", 100.5), ("600", 160.0)])
def test_client_may_only_shorten_the_deadline(header: str | None, deadline: float) -> None:
    headers = {} if header is None else {"x-request-timeout": header}
    assert request_deadline(100.0, 160.0, headers, T) == deadline


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan", "inf"])
def test_bad_deadline_header_is_400(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        request_deadline(0.0, 60.0, {"x-request-timeout": bad}, T)


def test_attempt_timeouts_never_outlive_the_deadline() -> None:
    t = attempt_timeouts(deadline=10.0, now=5.0, t=T)
    assert (t.connect_s, t.first_byte_s, t.idle_s) == (2, 5, 5)
    with pytest.raises(DeadlineExceeded):
        attempt_timeouts(deadline=10.0, now=10.0, t=T)


@pytest.mark.parametrize("left", [100.0, 60.0, 30.0, 29.999, 15.0, 2.0, 0.5, 0.0, -1.0])
def test_attempt_limits_are_attempt_timeouts(left: float) -> None:
    limits = AttemptLimits(T)
    if left <= 0:
        with pytest.raises(DeadlineExceeded):
            limits.at(100.0 + left, 100.0)
        return
    assert limits.at(100.0 + left, 100.0) == attempt_timeouts(100.0 + left, 100.0, T)


def test_chaos_is_off_by_default_and_seeded() -> None:
    assert Chaos(ChaosSettings(), Rng(1)).decide("a", "m", None) is None
    rules = [ChaosRule(fault="error", percent=30, provider="a", status=503)]
    runs = []
    for _ in range(2):
        c = Chaos(ChaosSettings(enabled=True, rules=rules), Rng(4))
        runs.append([c.decide("a", "m", "x") is not None for _ in range(1000)])
    assert runs[0] == runs[1]
    assert 250 < sum(runs[0]) < 350
    c = Chaos(ChaosSettings(enabled=True, rules=rules), Rng(4))
    assert all(c.decide("b", "m", "x") is None for _ in range(100))


@pytest.mark.parametrize(
    ("fault", "status", "cls"),
    [
        ("abort", 503, UpstreamConnectError),
        ("timeout", 503, UpstreamTimeout),
        ("error", 500, UpstreamServerError),
        ("error", 429, UpstreamRateLimited),
        ("error", 400, UpstreamClientError),
    ],
)
def test_injected_errors(fault: Literal["abort", "timeout", "error"], status: int, cls: type) -> None:
    c = Chaos(ChaosSettings(enabled=True, rules=[ChaosRule(fault=fault, percent=100, status=status)]), Rng(0))
    inj = c.decide("a", "m", None)
    assert inj is not None
    assert isinstance(injected_error("a", inj), cls)


def _stream(g: Guardrails, parts: list[str]) -> tuple[str, str | None]:
    guard = g.stream()
    out, stop = "", None
    for p in parts:
        text, stop = guard.feed(p)
        out += text
        if stop:
            return out, stop
    text, stop = guard.flush()
    return out + text, stop


@pytest.mark.parametrize(
    ("settings", "parts", "text", "stop"),
    [
        (GuardrailSettings(banned_words=["secret"]), ["the sec", "ret is"], "the ", "content_filter"),
        (GuardrailSettings(banned_words=["secret"]), ["no", " problem"], "no problem", None),
        (
            GuardrailSettings(banned_words=["secret"], banned_action="redact", redaction="***"),
            ["a SEC", "RET b s", "ecret"],
            "a *** b ***",
            None,
        ),
        (GuardrailSettings(max_response_chars=5), ["abc", "defg"], "abcde", "length"),
        (GuardrailSettings(max_response_tokens=1), ["abc", "defg"], "abcd", "length"),
    ],
)
def test_stream_guard_across_chunk_boundaries(
    settings: GuardrailSettings, parts: list[str], text: str, stop: str | None
) -> None:
    assert _stream(Guardrails(settings), parts) == (text, stop)


def test_json_answer_guard_and_counts() -> None:
    g = Guardrails(GuardrailSettings(banned_words=["bad"], max_response_chars=100))
    body: dict[str, Any] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok then bad"}, "finish_reason": "stop"}]
    }
    assert g.apply(body) == ["banned_words.block"]
    assert body["choices"][0]["message"]["content"] == "ok then "
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert g.counts["banned_words.block"] == 1


def test_input_check() -> None:
    g = Guardrails(GuardrailSettings(banned_words=["bad"], check_input=True))
    g.check_input({"messages": [{"role": "user", "content": "fine"}]})
    with pytest.raises(InvalidRequest):
        g.check_input({"messages": [{"role": "user", "content": [{"type": "text", "text": "so BAD"}]}]})
    assert g.counts["input_check.block"] == 1


FULL = AttemptTimeouts(connect_s=2, first_byte_s=30, idle_s=15)
CUT = AttemptTimeouts(connect_s=0.5, first_byte_s=0.5, idle_s=0.5)


@pytest.mark.parametrize(
    ("exc", "limits", "cut"),
    [
        (UpstreamTimeout("p", "x"), FULL, False),
        (UpstreamTimeout("p", "x"), CUT, True),
        (UpstreamStreamTimeout("p", "x"), FULL, False),
        (UpstreamStreamTimeout("p", "x"), CUT, True),
        (DeadlineReached("p", "x"), FULL, True),
        (UpstreamServerError("p", "x", status=503), CUT, False),
        (UpstreamConnectError("p", "x"), CUT, False),
    ],
)
def test_a_timeout_is_the_deadlines_fault_only_when_the_limit_was_cut(
    exc: UpstreamError, limits: AttemptTimeouts, cut: bool
) -> None:
    assert cut_by_deadline(exc, limits, T) is cut


@pytest.mark.parametrize(
    ("rule", "hit"),
    [
        ({}, True),
        ({"provider": "a"}, True),
        ({"provider": "b"}, False),
        ({"model": "m"}, True),  # the upstream model name
        ({"model": "chat"}, True),  # the model group the client asked for
        ({"model": "other"}, False),
        ({"consumer": "x"}, True),
        ({"consumer": "y"}, False),
        ({"provider": "a", "consumer": "y"}, False),
    ],
)
def test_chaos_rule_matching(rule: dict[str, str], hit: bool) -> None:
    c = Chaos(
        ChaosSettings(enabled=True, rules=[ChaosRule.model_validate({"fault": "abort", "percent": 100, **rule})]),
        Rng(0),
    )
    assert (c.decide("a", "m", "x", group="chat") is not None) is hit


def test_chaos_rules_changed_at_run_time_take_effect_at_once() -> None:
    c = Chaos(ChaosSettings(), Rng(0))
    assert c.decide("a", "m", None) is None
    c.update(ChaosSettings(enabled=True, rules=[ChaosRule(fault="latency", percent=100, latency_s=2)]))
    inj = c.decide("a", "m", None)
    assert inj is not None and inj.to_dict() == {"rule": 0, "fault": "latency", "latency_s": 2}
    c.update(ChaosSettings(enabled=False, rules=c.settings.rules))
    assert c.decide("a", "m", None) is None
