"""The decision core as a pure function: the latency formula, output length, the order of checks."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.decide import Decision, Request, SimState, decide
from simulators.profile import load_profile
from simulators.sampling import request_rng


def run(
    profile: dict[str, Any], req: Request, seq: int = 0, t: float = 0.0, seed: int = 1, state: SimState | None = None
) -> Decision:
    return decide(load_profile(profile), req, seq, t, request_rng(seed, "b", seq), state or SimState())


def test_ttft_is_overhead_plus_prompt_tokens_times_prefill() -> None:
    prof = {"latency": {"time-to-first-token": 70, "prefill-time-per-token": 0.1, "inter-token-latency": 12}}
    d = run(prof, Request("m", prompt_tokens=256))
    assert d.ttft == pytest.approx(0.0956)
    assert d.itl == pytest.approx(0.012) and d.itls is None
    assert d.decode_s == pytest.approx(0.012 * (d.completion_tokens - 1))


def test_inter_token_gaps_are_drawn_one_per_token_and_clamped() -> None:
    prof = {
        "latency": {"inter-token-latency": 12, "inter-token-latency-std-dev": 2, "distribution": "normal"},
        "output": {"output-tokens": 400},
    }
    d = run(prof, Request("m", prompt_tokens=10))
    assert d.itls is not None and len(d.itls) == d.completion_tokens - 1 == 399
    assert all(0.006 <= g <= 0.018 for g in d.itls)
    assert sum(d.itls) == pytest.approx(d.decode_s)
    assert 0.0115 < d.decode_s / 399 < 0.0125


@pytest.mark.parametrize(
    ("max_tokens", "n", "finish"), [(None, 16, "stop"), (100, 16, "stop"), (16, 16, "length"), (5, 5, "length")]
)
def test_output_length_is_the_draw_capped_by_max_tokens(max_tokens: int | None, n: int, finish: str) -> None:
    d = run({"output": {"output-tokens": 16}}, Request("m", 10, max_tokens))
    assert (d.completion_tokens, d.finish_reason, len(d.tokens)) == (n, finish, n)


def test_output_length_distribution_is_seeded() -> None:
    prof = {"output": {"output-tokens": 200, "output-tokens-std-dev": 150, "distribution": "lognormal"}}
    lengths = [run(prof, Request("m", 10), seq=i).completion_tokens for i in range(2000)]
    assert lengths == [run(prof, Request("m", 10), seq=i).completion_tokens for i in range(2000)]
    assert 185 < sum(lengths) / len(lengths) < 215
    assert len(set(lengths)) > 100


def test_a_decision_depends_only_on_its_inputs() -> None:
    prof = {"latency": {"time-to-first-token": 500, "time-to-first-token-std-dev": 300, "distribution": "lognormal"}}
    a = run(prof, Request("m", 10), seq=7).log()
    assert run(prof, Request("m", 10), seq=7).log() == a
    assert run(prof, Request("m", 10), seq=8).log() != a
    assert run(prof, Request("m", 10), seq=7, seed=2).log() != a


@pytest.mark.parametrize(
    ("profile", "req", "outcome"),
    [
        ({"api-keys": ["k"], "served-models": ["x"]}, Request("m", 10, api_key="bad"), "invalid_api_key"),
        ({"served-models": ["x"], "max-model-len": 16}, Request("m", 10, 100), "model_not_found"),
        ({"max-model-len": 16, "timeline": [{"type": "outage"}]}, Request("m", 10, 100), "context_length"),
        ({"rate-limits": {"rpm": 1}, "timeline": [{"type": "outage", "mode": 500}]}, Request("m", 10), "server_error"),
        (
            {"rate-limits": {"tpm": 10}, "timeline": [{"type": "budget_exhaustion", "after-tokens": 0}]},
            Request("m", 10, 50),
            "rate_limit",
        ),
        (
            {
                "timeline": [
                    {"type": "budget_exhaustion", "after-tokens": 0},
                    {"type": "degradation", "failure-injection-rate": 1},
                ]
            },
            Request("m", 10),
            "insufficient_quota",
        ),
        ({"timeline": [{"type": "degradation", "failure-injection-rate": 1}]}, Request("m", 10), "server_error"),
        ({}, Request("m", 10), "ok"),
    ],
)
def test_order_of_checks(profile: dict[str, Any], req: Request, outcome: str) -> None:
    assert run(profile, req).log()["outcome"] == outcome


def test_budget_counts_prompt_and_completion_tokens_and_dollars() -> None:
    prof = load_profile(
        {
            "output": {"output-tokens": 16},
            "prices": {"input-per-1m": 2.0, "output-per-1m": 8.0},
            "timeline": [{"type": "budget_exhaustion", "after-tokens": 1000}],
        }
    )
    state = SimState()
    for seq in range(3):
        decide(prof, Request("m", 100), seq, 0.0, request_rng(1, "b", seq), state)
    assert state.spent_tokens == {0: 3 * 116}
    assert state.spent_dollars[0] == pytest.approx(3 * (100 * 2.0 + 16 * 8.0) / 1e6)
