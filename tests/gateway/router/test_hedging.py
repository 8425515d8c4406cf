"""Hedged requests through the router (virtual time, simulators in process): the hedge goes out after the
route's TTFT quantile, the first answer wins, the loser is cancelled and lets go of its slot and probe once, the
hedge is charged to the retry budget, and nothing is hedged once the first byte is out or without budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.call import Call, Reply
from gateway.clock import run_virtual
from gateway.config import ConfigError
from gateway.errors import GatewayError
from gateway.router.breaker import State
from gateway.runtime import Runtime

from .conftest import CountingTransport, RecordingEvents, make_call, runtime, send, settings, sse_events

MODELS = [
    {
        "name": "chat",
        "routes": [
            {"provider": "openai", "model": "gpt-4o-mini", "weight": 1},
            {"provider": "vllm", "model": "llama", "weight": 0},  # tried second
        ],
    }
]
HEDGING = {"enabled": True, "min_samples": 5}
TTFT_200MS = {"time-to-first-token": 200}
# openai answers in 200 ms, then hangs from t = 10 s on; vllm answers in 50 ms
OPENAI_HANGS = {
    "base": "instant",
    "latency": TTFT_200MS,
    "timeline": [{"type": "outage", "start_s": 10, "mode": "hang"}],
}
VLLM = {"base": "instant", "latency": {"time-to-first-token": 50}}


def _settings(**router: Any) -> Any:
    return settings({"hedging": HEDGING, **router}, models=MODELS)


async def _warm(rt: Runtime, n: int = 5) -> None:
    """``n`` requests answered by openai in 200 ms: its TTFT p95 is 0.2 s."""
    for i in range(n):
        r, _ = await send(rt, make_call(rt, n=100 + i))
        assert isinstance(r, Reply)


async def _hung(rt: Runtime, *, stream: bool = False) -> tuple[Reply | GatewayError, bytes, Call, float]:
    await asyncio.sleep(10.0 - rt.clock.monotonic())
    call = make_call(rt, stream=stream)
    t0 = rt.clock.monotonic()
    r, body = await send(rt, call)
    return r, body, call, round(rt.clock.monotonic() - t0, 6)


def _run(s: Any, body: Any, *, openai: Any = OPENAI_HANGS) -> tuple[Any, RecordingEvents, CountingTransport, Runtime]:
    events = RecordingEvents()

    async def main() -> tuple[Any, CountingTransport, Runtime]:
        rt, tr = runtime(s, openai=openai, vllm=VLLM, events=events)
        return await body(rt), tr, rt

    out, tr, rt = run_virtual(main())
    return out, events, tr, rt


def test_a_hedge_after_the_ttft_p95_wins_and_the_loser_lets_go_once() -> None:
    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        out = await _hung(rt)
        return *out, rt.router.policies.budget.snapshot("vllm", rt.clock.monotonic())

    (r, raw, call, took, budget), events, tr, rt = _run(_settings(), body)
    assert isinstance(r, Reply) and r.status == 200 and b"chat.completion" in raw
    assert took == 0.25  # 0.2 s (openai's p95) + vllm's 50 ms, not the 30 s first-byte timeout
    assert call.record.decisions["hedge"] == {"after_s": 0.2, "provider": "vllm", "won": True}
    assert [(a.provider, a.outcome, a.status) for a in call.record.attempts] == [
        ("openai", "cancelled", None),
        ("vllm", "ok", 200),
    ]
    assert call.record.provider == "vllm"
    assert events.named("hedge_sent") == [("vllm",)] and events.named("hedge_won") == [("vllm",)]
    assert rt.router.shedder.in_flight_at("openai") == 0  # released once: twice would be -1
    assert rt.router.shedder.in_flight_at("vllm") == 0
    assert tr.calls == {"openai.sim": 6, "vllm.sim": 1}
    assert budget["extras"] == 1  # the hedge was charged to the retry budget


def test_the_first_answer_wins_when_the_first_attempt_is_only_a_little_slow() -> None:
    slowish = {
        "base": "instant",
        "latency": TTFT_200MS,
        "timeline": [{"type": "latency_spike", "start_s": 10, "latency": 60}],
    }
    slow_vllm = {"base": "instant", "latency": {"time-to-first-token": 500}}

    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        return await _hung(rt)

    events = RecordingEvents()

    async def main() -> Any:
        rt, _ = runtime(_settings(), openai=slowish, vllm=slow_vllm, events=events)
        return await body(rt), rt

    (r, _, call, took), rt = run_virtual(main())
    assert isinstance(r, Reply) and took == 0.26  # openai at 260 ms beats the hedge sent at 200 ms (500 ms)
    assert call.record.decisions["hedge"] == {"after_s": 0.2, "provider": "vllm"}
    assert [(a.provider, a.outcome) for a in call.record.attempts] == [("openai", "ok"), ("vllm", "cancelled")]
    assert call.record.provider == "openai"
    assert events.named("hedge_won") == []
    assert rt.router.shedder.in_flight_at("vllm") == 0


def test_a_stream_is_hedged_before_its_first_byte_and_never_after() -> None:
    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        return await _hung(rt, stream=True)

    (r, raw, call, took), _events, _, rt = _run(_settings(), body)
    assert isinstance(r, Reply) and r.media_type == "text/event-stream"
    assert took == 0.25 and sse_events(raw)[-1]["choices"]
    assert call.record.decisions["hedge"]["won"] is True
    assert rt.router.shedder.in_flight_at("openai") == 0 and rt.router.shedder.in_flight_at("vllm") == 0


def test_a_slow_stream_after_its_first_byte_is_not_hedged() -> None:
    stalls = {
        "base": "instant",
        "latency": TTFT_200MS,
        "timeline": [{"type": "slow_stream", "start_s": 10, "stall-after-tokens": 2, "stall-seconds": 5}],
    }

    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        return await _hung(rt, stream=True)

    (r, _raw, call, took), events, tr, _ = _run(_settings(), body, openai=stalls)
    assert isinstance(r, Reply) and took >= 5.0  # the stall is after the first byte: waited out
    assert "hedge" not in call.record.decisions and events.named("hedge_sent") == []
    assert tr.calls["vllm.sim"] == 0


def test_no_hedge_when_the_retry_budget_is_spent() -> None:
    s = _settings(budget={"ratio": 0.0, "min_per_window": 0})

    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        budget = rt.router.policies.budget
        for _ in range(5):  # vllm is failing: a hedge to it is not a failover to a healthy provider
            budget.on_outcome("vllm", False, 9.5)
        return await _hung(rt)

    (r, _, call, took), events, _, _ = _run(s, body)
    assert call.record.decisions["hedge"] == {"after_s": 0.2, "skipped": "retry_budget_exhausted"}
    assert events.named("hedge_sent") == [] and events.named("retry_budget_exhausted") == [("vllm",)]
    # the first-byte timeout, then a failover: vllm's failures have left the budget's 10 s window by then
    assert isinstance(r, Reply) and took == 30.05
    assert [(a.provider, a.outcome) for a in call.record.attempts] == [("openai", "timeout"), ("vllm", "ok")]


def test_a_hedge_to_a_healthy_provider_is_charged_even_with_the_budget_spent() -> None:
    s = _settings(budget={"ratio": 0.0, "min_per_window": 0})

    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        out = await _hung(rt)
        return *out, rt.router.policies.budget.snapshot("vllm", rt.clock.monotonic())

    (r, _, call, took, budget), _, _, _ = _run(s, body)
    assert isinstance(r, Reply) and took == 0.25 and call.record.decisions["hedge"]["won"] is True
    assert budget["extras"] == 1


def test_no_hedge_without_enough_samples_or_when_off() -> None:
    async def body(rt: Runtime) -> Any:
        await _warm(rt, n=4)
        return await _hung(rt)

    (_, _, call, took), events, _, _ = _run(_settings(), body)
    assert "hedge" not in call.record.decisions and took >= 30.0

    async def warm_body(rt: Runtime) -> Any:
        await _warm(rt)
        return await _hung(rt)

    (_, _, call, took), events, _, _ = _run(settings(models=MODELS), warm_body)
    assert "hedge" not in call.record.decisions and took >= 30.0 and events.named("hedge_sent") == []


def test_a_half_open_probe_that_loses_the_race_is_given_back() -> None:
    s = _settings(breaker={"half_open_probes": 1, "cooloff_s": 10})

    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        brs = rt.router.breakers
        key = brs.key("openai", "gpt-4o-mini")
        brs.get(key).adopt(State.OPEN, open_until=rt.clock.now() + 1.0, changed_at=rt.clock.now(), now=rt.clock.now())
        r, _, call, took = await _hung(rt)  # at 10 s openai is half-open: this attempt is its one probe
        return r, call, took, brs.peek(key), brs.admit(key, rt.clock.now())[0]

    (r, call, took, state, admitted), _, _, _ = _run(s, body)
    assert isinstance(r, Reply) and took == 0.25 and call.record.decisions["hedge"]["won"] is True
    assert call.record.attempts[0].outcome == "cancelled"
    assert state is State.HALF_OPEN and admitted  # the probe came back: another one may go


def test_one_hedge_per_request_even_when_both_attempts_fail() -> None:
    vllm_down = {"base": "instant", "timeline": [{"type": "outage", "start_s": 0, "mode": "overloaded"}]}
    events = RecordingEvents()

    async def main() -> tuple[Any, Call, float]:
        rt, _ = runtime(_settings(retry={"max_attempts": 3}), openai=OPENAI_HANGS, vllm=vllm_down, events=events)
        await _warm(rt)
        r, _, call, took = await _hung(rt)
        return r, call, took

    r, call, took = run_virtual(main())
    assert isinstance(r, GatewayError)
    assert [a.provider for a in call.record.attempts] == ["openai", "vllm", "openai"]  # the third is a retry
    assert events.named("hedge_sent") == [("vllm",)]  # the retry was not hedged again
    assert took == 60.0 and call.record.attempts[2].outcome == "deadline"  # the retry hung to the deadline


def test_no_hedge_that_would_start_past_the_request_deadline() -> None:
    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        await asyncio.sleep(10.0 - rt.clock.monotonic())
        call = make_call(rt, headers={"x-request-timeout": "0.15"})  # the p95 wait (0.2 s) would outlive it
        r, _ = await send(rt, call)
        return r, call

    (r, call), events, tr, _ = _run(_settings(), body)
    assert isinstance(r, GatewayError) and r.status == 504
    assert "hedge" not in call.record.decisions and events.named("hedge_sent") == [] and tr.calls["vllm.sim"] == 0


def test_hedging_can_be_on_for_some_routes_only() -> None:
    async def body(rt: Runtime) -> Any:
        await _warm(rt)
        return await _hung(rt)

    on_openai = settings({"hedging": {"routes": ["openai/gpt-4o-mini"], "min_samples": 5}}, models=MODELS)
    (_, _, call, took), _, _, _ = _run(on_openai, body)
    assert took == 0.25 and call.record.decisions["hedge"]["won"] is True
    on_vllm = settings({"hedging": {"routes": ["vllm/llama"], "min_samples": 5}}, models=MODELS)
    (_, _, call, took), _, _, _ = _run(on_vllm, body)
    assert took >= 30.0 and "hedge" not in call.record.decisions


def test_hedging_an_unknown_route_is_a_configuration_error() -> None:
    async def main() -> None:
        runtime(settings({"hedging": {"routes": ["openai/gpt-5"]}}, models=MODELS))

    with pytest.raises(ConfigError, match="hedging for unknown route 'openai/gpt-5'"):
        run_virtual(main())
