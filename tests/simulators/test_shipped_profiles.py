"""The shipped profiles against the figures they cite, and the scripted ones against their descriptions."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import MutableMapping
from typing import Any

import httpx
import orjson
import pytest

from gateway.clock import FakeClock, LoopClock, run_virtual
from simulators import SimulatedConnectionReset, create_app, load_profile
from simulators.decide import Decision, Request, SimState, decide
from simulators.failures import Flavour
from simulators.sampling import request_rng
from tests.simulators.conftest import SimFactory


def drawn(name: str, n: int = 1500, prompt_tokens: int = 256) -> tuple[list[float], list[float]]:
    """TTFT (s, before queueing) and mean inter-token gap (s) of ``n`` decisions at batch 1."""
    prof = load_profile(name)
    ttft, itl = [], []
    for seq in range(n):
        d = decide(prof, Request("m", prompt_tokens, 40), seq, 0.0, request_rng(0, name, seq), SimState())
        ttft.append(d.ttft)
        itl.append(d.decode_s / max(1, d.completion_tokens - 1))
    return sorted(ttft), itl


def pct(xs: list[float], q: float) -> float:
    return xs[round(q * (len(xs) - 1))]


@pytest.mark.parametrize(
    ("name", "median", "p95", "itl"),
    [
        # hosted GPT-4o class: TTFT median 0.4-0.9 s, p95 2-4 s, 30-110 tokens/s a stream
        ("openai-gpt-4o", (0.4, 0.9), (2.0, 4.0), (1 / 110, 1 / 30)),
        # the smaller hosted model: median ~0.4 s, a shorter tail, faster decoding
        ("openai-gpt-4o-mini", (0.3, 0.5), (1.2, 2.0), (1 / 110, 1 / 30)),
        # Gemini 2.0 Flash: median TTFT 140-400 ms, 120-200 output tokens/s
        ("gemini-flash", (0.14, 0.4), (0.5, 1.2), (1 / 200, 1 / 120)),
        # vLLM 8B at batch 1, 256-token prompt: H100 TTFT 60-120 ms, ITL 10-15 ms; A100 100-180 ms, 15-25 ms
        ("vllm-8b-h100", (0.06, 0.12), (0.06, 0.135), (0.010, 0.015)),
        ("vllm-8b-a100", (0.10, 0.18), (0.10, 0.20), (0.015, 0.025)),
    ],
)
def test_latency_matches_the_cited_figures(
    name: str, median: tuple[float, float], p95: tuple[float, float], itl: tuple[float, float]
) -> None:
    ttft, gaps = drawn(name)
    assert median[0] <= pct(ttft, 0.5) <= median[1]
    assert p95[0] <= pct(ttft, 0.95) <= p95[1]
    assert itl[0] <= statistics.fmean(gaps) <= itl[1]


def test_vllm_8b_h100_capacity_is_llm_d_8b_h100_balanced() -> None:
    cap = load_profile("vllm-8b-h100").capacity
    assert (cap.max_num_seqs, cap.time_factor_under_load, cap.max_waiting_queue_length) == (16, 2.0, None)


def closed_loop(profile: str, users: int, seconds: float) -> tuple[float, int]:
    """``users`` clients each sending one non-streaming request after another for ``seconds`` of virtual time;
    returns the median TTFT (queue wait + prefill) over the last two thirds, and the refusals."""

    async def main() -> tuple[float, int]:
        app = create_app("vllm", profile, seed=3, clock=LoopClock())
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 1000}]})

        async def user() -> None:
            while loop.time() < end:
                sent: list[MutableMapping[str, Any]] = []
                asked: list[int] = []

                async def receive(asked: list[int] = asked) -> dict[str, Any]:
                    asked.append(1)
                    if len(asked) > 1:  # as an ASGI server does: block until the client goes (never, here)
                        await loop.create_future()
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(msg: MutableMapping[str, Any], sent: list[MutableMapping[str, Any]] = sent) -> None:
                    sent.append(msg)

                scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
                await app(scope, receive, send)
                if sent[0]["status"] != 200:
                    await asyncio.sleep(1)

        await asyncio.gather(*(user() for _ in range(users)))
        outs = list(app.engine.outcomes)
        served = [o["ttft"] for o in outs[len(outs) // 3 :] if o["ttft"] is not None]
        return statistics.median(served), sum(o["status"] == "queue_full" for o in outs)

    return run_virtual(main())


def test_vllm_70b_cliff_has_the_shape_of_nims_load_curve() -> None:
    """NIM 70B: TTFT 0.83 s at 50 concurrent, 8 s at 100, 89 s at 250. Sub-second below the batch, seconds
    past it, about a minute at 250 - and still no refusals: the queue, not errors."""
    ttft_50, refused_50 = closed_loop("vllm-70b-cliff", 50, 150)
    ttft_100, _ = closed_loop("vllm-70b-cliff", 100, 250)
    ttft_250, refused_250 = closed_loop("vllm-70b-cliff", 250, 350)
    assert 0.5 < ttft_50 < 1.5
    assert 5 < ttft_100 < 20
    assert 40 < ttft_250 < 120
    assert refused_50 == refused_250 == 0


async def status_at(flavour: Flavour, name: str, t: float, **body: Any) -> int | str:
    clock = FakeClock()
    app = create_app(flavour, name, seed=0, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
        clock.advance(t)
        try:
            r = await c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}], **body})
        except SimulatedConnectionReset:
            return "reset"
        return r.status_code


@pytest.mark.parametrize(
    ("name", "t", "status"),
    [
        ("openai-outage-503", 29, 200),
        ("openai-outage-503", 30, 503),
        ("openai-outage-503", 89.9, 503),
        ("openai-outage-503", 90, 200),
        ("openai-flapping", 20, 503),
        ("openai-flapping", 25, 200),
        ("openai-flapping", 200, 200),
        ("openai-brownout", 330, 503),
        ("openai-brownout", 360, "reset"),
        ("openai-brownout", 370, 200),
        ("vllm-crash", 59, 200),
        ("vllm-crash", 60, "reset"),
        ("vllm-crash", 90, 200),
    ],
)
async def test_scripted_profiles_do_what_they_say(name: str, t: float, status: int | str) -> None:
    flavour: Flavour = "vllm" if name.startswith("vllm") else "openai"
    assert await status_at(flavour, name, t, max_tokens=4) == status


async def test_budget_exhausted_after_half_a_dollar_until_300_s() -> None:
    clock = FakeClock()
    app = create_app("openai", "openai-budget-exhausted", seed=0, clock=clock)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40_000}], "max_tokens": 10}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
        codes = [(await c.post("/v1/chat/completions", json=body)).status_code for _ in range(25)]
        # 10,006 prompt tokens at $2.50 per million: $0.025 a request, so the 21st finds $0.50 spent
        assert codes == [200] * 20 + [429] * 5
        clock.advance(300)
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 200


def test_rate_limited_profile_limits() -> None:
    rl = load_profile("openai-rate-limited").rate_limits
    assert (rl.rpm, rl.tpm) == (60, 40_000)


def test_degraded_fails_a_tenth_with_500_503_or_429_between_30_and_150_s() -> None:
    prof = load_profile("openai-degraded")

    def outcomes(t: float) -> list[str]:
        return [
            decide(prof, Request("m", 10, 4), seq, t, request_rng(0, "d", seq), SimState()).log()["outcome"]
            for seq in range(2000)
        ]

    during = outcomes(30.0)
    failed = [o for o in during if o != "ok"]
    assert set(failed) == {"server_error", "overloaded", "rate_limit"}
    assert 0.08 < len(failed) / len(during) < 0.12
    assert set(outcomes(29.9)) == set(outcomes(150.0)) == {"ok"}


def test_latency_spike_profile_multiplies_by_five_and_adds_half_a_second() -> None:
    prof = load_profile("openai-latency-spike")

    def at(t: float, seq: int) -> Decision:
        return decide(prof, Request("m", 10, 20), seq, t, request_rng(0, "s", seq), SimState())

    for seq in range(50):  # the TTFT draw comes first, so it is the same draw before and during the spike
        assert 0.4 <= at(60.0, seq).ttft - 5 * at(59.9, seq).ttft <= 0.6  # +500 ms +- 100 ms jitter
    before = statistics.fmean(at(59.9, seq).decode_s for seq in range(400))
    during = statistics.fmean(at(60.0, seq).decode_s for seq in range(400))
    assert 4.7 < during / before < 5.3
    assert at(120.0, 0).log() == at(0.0, 0).log() | {"t": 120.0}


async def test_slow_stream_profile_stalls_then_cuts(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("openai", "openai-slow-stream", clock=clock)
    clock.advance(30)
    resp = await sim.chat(stream=True, max_tokens=30)
    assert sim.events(resp)[-1] == "[DONE]" and any(10 < s < 10.1 for s in clock.sleeps)
    clock.advance(60)
    with pytest.raises(SimulatedConnectionReset):
        await sim.chat(stream=True, max_tokens=80)


def test_hang_profile_holds_requests_between_30_and_60_s() -> None:
    async def main() -> tuple[int, bool]:
        app = create_app("openai", "openai-hang", seed=0, clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            first = (await c.post("/v1/chat/completions", json=body)).status_code
            await asyncio.sleep(31)
            try:
                async with asyncio.timeout(100):
                    await c.post("/v1/chat/completions", json=body)
            except TimeoutError:
                return first, True
            return first, False

    assert run_virtual(main()) == (200, True)
