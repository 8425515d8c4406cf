"""One test per phase type (and the window rules), driven by a FakeClock: time moves only when told to."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from gateway.clock import FakeClock
from simulators import SimulatedConnectionReset
from tests.simulators.conftest import Sim, SimFactory


def tl(*phases: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The instant profile (zero latency, 16 tokens) with a timeline."""
    return {"base": "instant", "timeline": list(phases), **extra}


async def statuses(sim: Sim, n: int, **body: Any) -> list[int]:
    return [(await sim.chat(**body)).status_code for _ in range(n)]


async def test_outage_window_in_seconds(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("openai", tl({"type": "outage", "start_s": 10, "end_s": 20, "mode": 503}), clock=clock)
    assert (await sim.chat()).status_code == 200
    clock.advance(10)
    assert (await sim.chat()).status_code == 503
    clock.advance(9.99)
    assert (await sim.chat()).status_code == 503
    clock.advance(0.01)
    assert (await sim.chat()).status_code == 200


async def test_outage_window_in_requests(make_sim: SimFactory) -> None:
    sim = make_sim("openai", tl({"type": "outage", "from-request": 2, "to-request": 4, "mode": 500}))
    assert await statuses(sim, 6) == [200, 200, 500, 500, 200, 200]


async def test_timeline_scale_stretches_windows(make_sim: SimFactory) -> None:
    clock = FakeClock()
    phases = [{"type": "outage", "start_s": 10, "end_s": 20}]
    profile = {"base": "instant", "timeline": {"scale": 0.1, "phases": phases}}
    sim = make_sim("openai", profile, clock=clock)
    clock.advance(1.5)
    assert (await sim.chat()).status_code == 503
    clock.advance(1)
    assert (await sim.chat()).status_code == 200


async def test_vllm_health_follows_outage(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("vllm", tl({"type": "outage", "start_s": 5, "end_s": 10, "mode": "reset"}), clock=clock)
    assert (await sim.http.get("/health")).status_code == 200
    clock.advance(5)
    assert (await sim.http.get("/health")).status_code == 503
    with pytest.raises(SimulatedConnectionReset):
        await sim.chat()
    clock.advance(5)
    assert (await sim.http.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "phase",
    [
        {"type": "outage", "toxicity": 0.5},
        {"type": "outage", "from-request": 0, "to-request": 5},
        {"type": "outage", "mode": 429},
        {"type": "degradation", "failure-injection-rate": 1.0},
    ],
)
async def test_vllm_health_stays_up_when_the_engine_is_not_dead(make_sim: SimFactory, phase: dict[str, Any]) -> None:
    sim = make_sim("vllm", tl(phase))
    assert (await sim.http.get("/health")).status_code == 200


async def test_vllm_health_follows_flapping(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("vllm", tl({"type": "flapping", "period": 10, "mode": 500}), clock=clock)
    seen = []
    for _ in range(4):
        seen.append((await sim.http.get("/health")).status_code)
        clock.advance(5)
    assert seen == [503, 200, 503, 200]


@pytest.mark.parametrize(("first", "pattern"), [("down", [503, 200, 503, 200]), ("up", [200, 503, 200, 503])])
async def test_flapping(make_sim: SimFactory, first: str, pattern: list[int]) -> None:
    clock = FakeClock()
    ph = {"type": "flapping", "period": 10, "down-fraction": 0.5, "first": first, "mode": 503}
    sim = make_sim("openai", tl(ph), clock=clock)
    seen = []
    for _ in range(4):
        seen.append((await sim.chat()).status_code)
        clock.advance(5)
    assert seen == pattern


async def test_latency_spike_multiplies_and_adds(make_sim: SimFactory) -> None:
    clock = FakeClock()
    base = {"latency": {"time-to-first-token": 100, "inter-token-latency": 10}, "output": {"output-tokens": 5}}
    spike = {"type": "latency_spike", "start_s": 60, "end_s": 120, "factor": 3, "latency": 50}
    sim = make_sim("openai", tl(spike, **base), clock=clock)
    await sim.chat()
    clock.advance(60)
    await sim.chat()
    log = sim.engine.decision_log()
    assert [d["ttft_ms"] for d in log] == [100.0, 350.0]
    assert [d["decode_ms"] for d in log] == [40.0, 120.0]
    assert clock.sleeps == [pytest.approx(0.14), pytest.approx(0.47)]


@pytest.mark.parametrize(("applies_to", "ttft", "decode"), [("ttft", 300.0, 40.0), ("itl", 100.0, 120.0)])
async def test_latency_spike_applies_to(make_sim: SimFactory, applies_to: str, ttft: float, decode: float) -> None:
    base = {"latency": {"time-to-first-token": 100, "inter-token-latency": 10}, "output": {"output-tokens": 5}}
    sim = make_sim("openai", tl({"type": "latency_spike", "factor": 3, "applies-to": applies_to}, **base))
    await sim.chat()
    log = sim.engine.decision_log()[0]
    assert (log["ttft_ms"], log["decode_ms"]) == (ttft, decode)


async def test_a_stream_sleeps_ttft_then_one_gap_per_token(make_sim: SimFactory) -> None:
    clock = FakeClock()
    base = {"latency": {"time-to-first-token": 100, "inter-token-latency": 10}, "output": {"output-tokens": 4}}
    sim = make_sim("openai", tl(**base), clock=clock)
    events = sim.events(await sim.chat(stream=True))
    assert len(events) == 1 + 4 + 1 + 1  # role, tokens, finish, [DONE]
    assert clock.sleeps == [pytest.approx(x) for x in (0.1, 0.01, 0.01, 0.01)]


async def test_degradation_fails_about_p_with_the_chosen_types(make_sim: SimFactory) -> None:
    ph = {"type": "degradation", "failure-injection-rate": 0.3, "failure-types": ["server_error", "503"]}
    sim = make_sim("openai", tl(ph), seed=11)
    seen = await statuses(sim, 400)
    failed = [s for s in seen if s != 200]
    assert set(failed) == {500, 503}
    assert 0.2 < len(failed) / len(seen) < 0.4


async def test_toxicity_applies_a_phase_to_a_share_of_requests(make_sim: SimFactory) -> None:
    sim = make_sim("openai", tl({"type": "outage", "toxicity": 0.25}), seed=5)
    seen = await statuses(sim, 400)
    assert 0.15 < seen.count(503) / 400 < 0.35


async def test_slow_stream_stall(make_sim: SimFactory) -> None:
    clock = FakeClock()
    ph = {"type": "slow_stream", "stall-after-tokens": 4, "stall-seconds": 7}
    sim = make_sim("openai", tl(ph), clock=clock)
    resp = await sim.chat(stream=True)
    assert sim.events(resp)[-1] == "[DONE]"
    assert clock.sleeps == [7.0]
    await sim.chat()
    assert clock.sleeps == [7.0, 7.0]


@pytest.mark.parametrize("latency", [{}, {"time-to-first-token": 50, "inter-token-latency": 5}])
async def test_slow_stream_cut_reset(make_sim: SimFactory, latency: dict[str, Any]) -> None:
    prof = tl({"type": "slow_stream", "cut-after-tokens": 5, "cut-mode": "reset"}, latency=latency)
    sim = make_sim("openai", prof, clock=FakeClock())
    with pytest.raises(SimulatedConnectionReset):
        await sim.chat(stream=True)
    with pytest.raises(SimulatedConnectionReset):
        await sim.chat()


async def test_slow_stream_cut_error_event(make_sim: SimFactory) -> None:
    sim = make_sim("openai", tl({"type": "slow_stream", "cut-after-tokens": 5, "cut-mode": "error"}))
    events = sim.events(await sim.chat(stream=True))
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["type"] == "server_error"
    tokens = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-1]]
    assert len(tokens) == 5 and all(tokens)


async def test_slow_stream_cut_error_event_vllm_ends_with_done(make_sim: SimFactory) -> None:
    sim = make_sim("vllm", tl({"type": "slow_stream", "cut-after-tokens": 2, "cut-mode": "error"}))
    events = sim.events(await sim.chat(stream=True))
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"] == {
        "message": "Internal server error (EngineCore encountered an issue).",
        "type": "InternalServerError",
        "param": None,
        "code": 500,
    }
    assert len(events) == 5  # role, two tokens, the error, [DONE]


async def test_slow_stream_cut_error_event_raises_apierror_in_the_sdk(make_sim: SimFactory) -> None:
    sim = make_sim("openai", tl({"type": "slow_stream", "cut-after-tokens": 3, "cut-mode": "error"}))
    stream = await sim.sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    tokens = 0
    with pytest.raises(openai.APIError, match="The server had an error"):
        async for chunk in stream:
            tokens += bool(chunk.choices[0].delta.content)
    assert tokens == 3


async def test_slow_stream_cut_eof_is_a_silent_truncation(make_sim: SimFactory) -> None:
    sim = make_sim("vllm", tl({"type": "slow_stream", "cut-after-tokens": 3, "cut-mode": "eof"}))
    resp = await sim.chat(stream=True, stream_options={"include_usage": True})
    events = sim.events(resp)
    assert resp.status_code == 200 and "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert len(chunks) == 4  # the role chunk and three tokens


async def test_budget_exhaustion_after_tokens_until_phase_end(make_sim: SimFactory) -> None:
    clock = FakeClock()
    ph = {"type": "budget_exhaustion", "start_s": 0, "end_s": 60, "after-tokens": 100}
    sim = make_sim("openai", tl(ph), clock=clock)
    seen = await statuses(sim, 6)  # each request: 12 prompt + 16 completion tokens
    assert seen == [200, 200, 200, 200, 429, 429]
    assert (await sim.chat()).json()["error"]["code"] == "insufficient_quota"
    clock.advance(60)
    assert (await sim.chat()).status_code == 200


async def test_budget_exhaustion_after_dollars(make_sim: SimFactory) -> None:
    prices = {"input-per-1m": 1_000_000, "output-per-1m": 0}  # one dollar per prompt token
    sim = make_sim("openai", tl({"type": "budget_exhaustion", "after-dollars": 20}, prices=prices))
    assert await statuses(sim, 3) == [200, 200, 429]


async def test_rate_limit_phase(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("openai", tl({"type": "rate_limit", "start_s": 0, "end_s": 30, "rpm": 3}), clock=clock)
    seen = await statuses(sim, 4)
    assert seen == [200, 200, 200, 429]
    resp = await sim.chat()
    assert resp.headers["x-ratelimit-limit-requests"] == "3" and resp.headers["retry-after"] == "20"
    clock.advance(30)
    resp = await sim.chat()
    assert resp.status_code == 200 and "x-ratelimit-limit-requests" not in resp.headers


async def test_phases_compose(make_sim: SimFactory) -> None:
    clock = FakeClock()
    profile = tl(
        {"type": "latency_spike", "factor": 2},
        {"type": "outage", "start_s": 10, "end_s": 20, "mode": 500},
        {"type": "rate_limit", "rpm": 100},
        latency={"time-to-first-token": 100},
    )
    sim = make_sim("openai", profile, clock=clock)
    r = await sim.chat()
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "100"
    clock.advance(10)
    assert (await sim.chat()).status_code == 500
    log = sim.engine.decision_log()
    assert log[0]["phases"] == [0, 2] and log[0]["ttft_ms"] == 200.0
    assert log[1]["phases"] == [0, 1, 2] and log[1]["outcome"] == "server_error"
