"""Selection, guardrails, chaos and the decisions they leave in the request record, through the router."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest

from gateway.call import Call, Reply
from gateway.clock import run_virtual
from gateway.config import ConfigError
from gateway.errors import GatewayError, InvalidRequest, Unavailable

from .conftest import RecordingEvents, make_call, profile, runtime, send, settings, sse_events

PRIMARY_FALLBACK = [  # openai first, vllm the fallback (weight 0)
    {"provider": "openai", "model": "gpt-4o-mini", "weight": 1},
    {"provider": "vllm", "model": "llama", "weight": 0},
]
ECHO = {"base": "instant", "output": {"mode": "echo", "output-tokens": 50}}


def _run(router: dict[str, Any], calls: int, *, openai: Any = "instant", vllm: Any = "instant", **kw: Any) -> Any:
    async def main() -> list[Call]:
        rt, _ = runtime(settings(router), openai=openai, vllm=vllm)
        out = []
        for i in range(calls):
            call = make_call(rt, n=i, **kw)
            await send(rt, call)
            out.append(call)
        return out

    return run_virtual(main())


def test_scored_group_measures_each_route_then_prefers_the_fast_one() -> None:
    slow = {"base": "instant", "latency": {"time-to-first-token": 500}}
    fast = {"base": "instant", "latency": {"time-to-first-token": 50}}
    calls = _run({"groups": {"chat": {"strategy": "scored"}}}, 10, openai=slow, vllm=fast)
    assert {c.record.decisions["route"]["strategy"] for c in calls} == {"scored"}
    providers = [c.record.provider for c in calls]
    assert providers[:2] == ["openai", "vllm"]  # no sample yet counts as fastest: each route gets measured
    assert providers[2:] == ["vllm"] * 8
    assert calls[-1].record.decisions["route"]["order"] == ["vllm", "openai"]


def test_scored_group_weights_trade_latency_for_cost() -> None:
    slow_cheap = {"base": "instant", "latency": {"time-to-first-token": 500}}
    prices = {
        "vllm/llama": {"input_per_1m": 50, "output_per_1m": 50},
        "gpt-4o-mini": {"input_per_1m": 1, "output_per_1m": 1},
    }
    cost_first = {"groups": {"chat": {"strategy": "scored", "weights": {"latency_weight": 0.2, "cost_weight": 0.8}}}}

    async def main() -> list[str | None]:
        rt, _ = runtime(settings(cost_first, prices=prices), openai=slow_cheap)
        out = []
        for i in range(6):
            call = make_call(rt, n=i)
            await send(rt, call)
            out.append(call.record.provider)
        return out

    # openai: latency 1 x 0.2 + cost 0 = 0.2; vllm: latency 0 + cost 1 x 0.8 = 0.8
    assert run_virtual(main())[2:] == ["openai"] * 4


def test_weighted_routing_is_reproducible_from_the_seed() -> None:
    first = [c.record.decisions["route"]["order"] for c in _run({}, 30)]
    again = [c.record.decisions["route"]["order"] for c in _run({}, 30)]
    assert first == again and {o[0] for o in first} == {"openai", "vllm"}


@pytest.mark.parametrize(
    ("headers", "model", "group", "rule"),
    [
        ({"x-task": "classify"}, "chat", "solo", 0),
        ({}, "chat-small", "solo", 1),
        ({"x-task": "chat"}, "chat", "chat", None),
    ],
)
def test_task_rules_route_to_another_group(headers: dict[str, str], model: str, group: str, rule: int | None) -> None:
    rules = [{"task": "classify", "group": "solo"}, {"model": "chat-small", "group": "solo"}]
    models = [
        {
            "name": "chat",
            "aliases": ["chat-small"],
            "routes": [{"provider": "openai", "model": "gpt-4o-mini"}, {"provider": "vllm", "model": "llama"}],
        },
        {"name": "solo", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    ]

    async def main() -> Call:
        rt, _ = runtime(settings({"task_rules": rules}, models=models))
        call = make_call(rt, model=model, headers=headers)
        r, _ = await send(rt, call)
        assert isinstance(r, Reply)
        return call

    call = run_virtual(main())
    assert call.record.decisions["route"]["group"] == group
    if rule is None:
        assert "task_rule" not in call.record.decisions
    else:
        assert call.record.decisions["task_rule"]["rule"] == rule


def test_task_rules_naming_an_unknown_group_or_model_are_refused_at_start() -> None:
    async def main(router: dict[str, Any]) -> None:
        runtime(settings(router))

    with pytest.raises(ConfigError, match="unknown model group"):
        run_virtual(main({"task_rules": [{"task": "x", "group": "nope"}]}))
    with pytest.raises(ConfigError, match="unknown model"):
        run_virtual(main({"task_rules": [{"model": "nope", "group": "solo"}]}))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("rails", "text", "finish", "actions"),
    [
        ({"banned_words": ["secret"]}, "tell me the ", "content_filter", ["banned_words.block"]),
        (
            {"banned_words": ["secret"], "banned_action": "redact"},
            "tell me the [redacted] word now",
            "stop",
            ["banned_words.redact"],
        ),
        ({"max_response_chars": 9}, "tell me t", "length", ["max_length.truncate"]),
    ],
)
def test_output_guardrails_on_json_and_streamed_answers(
    stream: bool, rails: dict[str, Any], text: str, finish: str, actions: list[str]
) -> None:
    async def main() -> tuple[bytes, Call, list[tuple[Any, ...]]]:
        events = RecordingEvents()
        rt, _ = runtime(settings({"guardrails": rails}), openai=ECHO, events=events)
        call = make_call(rt, model="solo", stream=stream, content="tell me the secret word now")
        r, body = await send(rt, call)
        assert isinstance(r, Reply) and r.status == 200
        return body, call, events.named("guardrail_action")

    body, call, reported = run_virtual(main())
    if stream:
        chunks = [c for c in sse_events(body) if c.get("choices")]
        got = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert body.endswith(b"data: [DONE]\n\n")
        assert chunks[-1]["choices"][0]["finish_reason"] == finish
    else:
        choice = orjson.loads(body)["choices"][0]
        got = choice["message"]["content"]
        assert choice["finish_reason"] == finish
    assert got == text
    assert call.record.decisions["guardrail"] == actions
    assert [f"{g}.{a}" for g, a in reported] == actions
    assert "secret" not in repr(call.record.to_dict())  # content is never logged


def test_input_check_refuses_a_banned_word_with_400() -> None:
    async def main() -> tuple[Reply | GatewayError, int]:
        rt, tr = runtime(settings({"guardrails": {"banned_words": ["secret"], "check_input": True}}))
        r, _ = await send(rt, make_call(rt, model="solo", content="a SECRET plan"))
        return r, sum(tr.calls.values())

    r, calls = run_virtual(main())
    assert isinstance(r, InvalidRequest) and r.status == 400 and r.code == "content_filter" and calls == 0


@pytest.mark.parametrize(
    ("rule", "outcomes", "status"),
    [
        ({"fault": "abort", "provider": "openai"}, ["connect_error", "ok"], 200),
        ({"fault": "timeout", "provider": "openai"}, ["timeout", "ok"], 200),
        ({"fault": "error", "status": 503, "model": "chat"}, ["server_error", "server_error"], 503),
        ({"fault": "error", "status": 500, "consumer": "sre"}, ["server_error", "server_error"], 502),
        ({"fault": "error", "status": 500, "consumer": "batch"}, ["ok"], 200),
        ({"fault": "latency", "latency_s": 0.25, "model": "gpt-4o-mini"}, ["ok"], 200),
    ],
)
def test_chaos_faults_by_provider_model_and_consumer(rule: dict[str, Any], outcomes: list[str], status: int) -> None:
    chaos = {"enabled": True, "rules": [{"percent": 100, **rule}]}

    async def main() -> tuple[Call, int, float, list[tuple[Any, ...]]]:
        events = RecordingEvents()
        router = {"chaos": chaos, "retry": {"max_attempts": 2}, "timeouts": {"first_byte_s": 1.0}}
        s = settings(router, models=[{"name": "chat", "routes": PRIMARY_FALLBACK}])
        rt, _ = runtime(s, events=events)
        call = make_call(rt, consumer=s.consumers[0])  # sre
        t0 = rt.clock.monotonic()
        r, _ = await send(rt, call)
        return call, r.status, rt.clock.monotonic() - t0, events.named("chaos_injected")

    call, got, took, reported = run_virtual(main())
    assert [a.outcome for a in call.record.attempts] == outcomes and got == status
    injected = [a for a in call.record.attempts if a.injected]
    assert len(injected) == len(call.record.decisions.get("chaos", [])) == len(reported)
    if rule["fault"] == "latency":
        assert call.record.provider == "openai" and injected and took == 0.25
    if rule["fault"] == "timeout":
        assert took == 1.0  # the attempt's first-byte limit


def test_retry_and_budget_decisions_are_recorded() -> None:
    outage = profile({"type": "outage", "start_s": 0, "mode": "503"})
    calls = _run({"retry": {"max_attempts": 3}}, 4, openai=outage, vllm=outage)
    steps = calls[0].record.decisions["retry_decisions"]
    assert steps[0]["action"] == "failover" and steps[0]["budget"] == "healthy_failover"
    assert steps[1]["action"] == "retry" and 0 <= steps[1]["delay_s"] <= 0.2
    assert steps[-1] == {"action": "give_up", "reason": "max_attempts"}


def test_an_injected_fault_is_tagged_in_the_logs_the_metrics_and_the_request_log() -> None:
    chaos = {"enabled": True, "rules": [{"fault": "abort", "percent": 100, "provider": "openai"}]}

    async def main() -> tuple[Call, str, float | None]:
        rt, tr = runtime(settings({"chaos": chaos}))
        lines = io.StringIO()
        rt.telemetry.logs.set_stream(lines)
        call = make_call(rt, model="solo")
        r, _ = await send(rt, call)
        assert isinstance(r, GatewayError) and tr.calls["openai.sim"] == 0
        labels = {"fault": "abort", "provider": "openai"}
        return (
            call,
            lines.getvalue(),
            rt.telemetry.metrics.registry.get_sample_value("faultline_chaos_injections_total", labels),
        )

    call, logged, counted = run_virtual(main())
    events = [orjson.loads(line) for line in logged.splitlines()]
    assert {"event": "chaos_injected", "fault": "abort", "provider": "openai"}.items() <= events[0].items()
    assert counted == len(call.record.attempts) == 3
    assert all(a.injected and a.outcome == "connect_error" for a in call.record.attempts)


def test_breaker_transitions_and_budget_refusals_reach_the_logs_metrics_and_request_log() -> None:
    outage = profile({"type": "outage", "start_s": 0, "mode": "503"})
    breaker = {"min_calls": 4, "failure_rate": 0.5, "consecutive_failures": 0, "cooloff_s": 1000}

    async def main() -> tuple[list[Call], list[Any], Any]:
        rt, _ = runtime(settings({"breaker": breaker, "budget": {"min_per_window": 0}}), openai=outage, vllm=outage)
        lines = io.StringIO()
        rt.telemetry.logs.set_stream(lines)
        calls = []
        for i in range(10):
            call = make_call(rt, model="solo", n=i)
            await send(rt, call)
            calls.append(call)
        return calls, [orjson.loads(x) for x in lines.getvalue().splitlines()], rt.telemetry.metrics.registry

    calls, logged, registry = run_virtual(main())
    in_record = [e for c in calls for e in c.record.decisions.get("breaker", [])]
    assert [(e["from"], e["to"], e["reason"]) for e in in_record] == [("closed", "open", "failure_rate")]
    opened = [x for x in logged if x["event"] == "breaker_transition"]
    assert [(x["provider"], x["from_state"], x["to_state"]) for x in opened] == [("openai", "closed", "open")]
    labels = {"provider": "openai", "from_state": "closed", "to_state": "open"}
    assert registry.get_sample_value("faultline_breaker_transitions_total", labels) == 1
    refused = [c for c in calls if c.record.decisions.get("retry_budget_exhausted") == "openai"]
    assert refused and all(len(c.record.attempts) == 1 for c in refused)  # failed fast, no retry
    assert registry.get_sample_value("faultline_retry_budget_exhausted_total", {"provider": "openai"}) == len(refused)


def test_a_request_finding_every_half_open_breaker_out_of_probes_gets_503_at_once() -> None:
    breaker = {"min_calls": 1, "failure_rate": 0.5, "consecutive_failures": 0, "cooloff_s": 5, "half_open_probes": 1}

    async def main() -> tuple[Reply | GatewayError, Call, int]:
        rt, tr = runtime(settings({"breaker": breaker}))
        brs = rt.router.breakers
        keys = [brs.key("openai", "gpt-4o-mini"), brs.key("vllm", "llama")]
        for key in keys:
            await brs.record(key, False)  # open
        await asyncio.sleep(5)  # cool-off over: half-open
        for key in keys:
            assert brs.admit(key, rt.clock.now())[0]  # its one probe is in flight elsewhere
        call = make_call(rt)
        t0 = rt.clock.monotonic()
        r, _ = await send(rt, call)
        assert rt.clock.monotonic() == t0
        return r, call, sum(tr.calls.values())

    r, call, upstream = run_virtual(main())
    assert isinstance(r, Unavailable) and int(r.headers["retry-after"]) >= 1 and upstream == 0
    assert call.record.decisions["skipped"] == {"openai": "breaker_probing", "vllm": "breaker_probing"}
    assert call.record.attempts == []
