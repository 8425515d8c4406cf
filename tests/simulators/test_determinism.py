"""Every decision is a pure function of (seed, backend name, request seq, simulator time)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.clock import LoopClock, run_virtual
from simulators import create_app
from simulators.failures import Flavour

PROFILE = {
    "base": "openai-gpt-4o",
    "output": {"output-tokens": 30, "output-tokens-std-dev": 20},
    "timeline": [
        {"type": "degradation", "failure-injection-rate": 0.2, "failure-types": ["server_error", "overloaded"]},
        {"type": "latency_spike", "start_s": 2, "end_s": 4, "factor": 2, "latency": 100, "jitter": 50},
        {"type": "outage", "toxicity": 0.1, "mode": 500},
        {"type": "budget_exhaustion", "after-tokens": 3000},
    ],
}


def run(seed: int, name: str = "openai", concurrency: int = 8, rounds: int = 6) -> list[dict[str, Any]]:
    """Waves of concurrent requests under virtual time; returns the decision log."""

    async def main() -> list[dict[str, Any]]:
        app = create_app("openai", PROFILE, seed=seed, name=name, clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:

            async def one(i: int) -> None:
                body = {"model": "m", "messages": [{"role": "user", "content": "x" * (10 + i)}], "stream": i % 2 == 0}
                await c.post("/v1/chat/completions", json=body)

            for _ in range(rounds):
                await asyncio.gather(*(one(i) for i in range(concurrency)))
        return app.engine.decision_log()

    return run_virtual(main())


def test_same_seed_same_decisions() -> None:
    a, b = run(7), run(7)
    assert len(a) == 48
    assert a == b
    outcomes = {d["outcome"] for d in a}
    assert "ok" in outcomes and len(outcomes) > 1  # the profile really made varied decisions


def test_another_seed_or_backend_name_differs() -> None:
    a = run(7)
    assert run(8) != a
    assert run(7, name="openai-2") != a


def test_a_requests_draws_do_not_depend_on_earlier_requests() -> None:
    """Request seq k draws from its own stream: the same (seed, name, k) gives the same id and length."""
    short, long = run(3, concurrency=2, rounds=1), run(3, concurrency=8, rounds=1)
    for x, y in zip(short, long, strict=False):
        assert x["id"] == y["id"]


BYTES_PROFILE = {
    "base": "openai-gpt-4o-mini",
    "rate-limits": {"rpm": 600, "tpm": 400_000},
    "capacity": {"max-num-seqs": 4, "time-factor-under-load": 2.0},
    "timeline": [
        {"type": "degradation", "failure-injection-rate": 0.15, "failure-types": ["server_error", "overloaded", "429"]},
        {"type": "latency_spike", "start_s": 1, "end_s": 3, "factor": 3, "jitter": 40, "latency": 100},
        {"type": "slow_stream", "toxicity": 0.2, "cut-after-tokens": 4, "cut-mode": "error"},
        {"type": "slow_stream", "toxicity": 0.2, "stall-after-tokens": 2, "stall-seconds": 0.5},
    ],
}


def responses(flavour: Flavour, seed: int) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """Status, raw headers and body bytes of every response, in request order, under virtual time."""

    async def main() -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        app = create_app(flavour, BYTES_PROFILE, seed=seed, name="up", clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:

            async def one(i: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "word " * (i % 7 + 1)}],
                    "max_tokens": 5 + i % 40,
                    "stream": i % 3 == 0,
                    "stream_options": {"include_usage": i % 2 == 0},
                }
                r = await c.post("/v1/chat/completions", json=body)
                return r.status_code, list(r.headers.raw), r.content

            out = []
            for wave in range(8):
                out += await asyncio.gather(*(one(wave * 10 + i) for i in range(10)))
        return out

    return run_virtual(main())


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
def test_same_seed_same_requests_same_bytes(flavour: Flavour) -> None:
    a, b = responses(flavour, 21), responses(flavour, 21)
    assert a == b
    assert {s for s, _, _ in a} >= {200, 429, 500, 503}  # the faults really fired
    assert any(b"data: [DONE]" in body for _, _, body in a) and any(b'data: {"error"' in body for _, _, body in a)
    other = responses(flavour, 22)
    assert [body for _, _, body in other] != [body for _, _, body in a]
