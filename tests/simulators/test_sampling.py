"""Seeded draws: the two latency distributions, content and echo, prompt token estimates."""

from __future__ import annotations

import math
import statistics

import pytest

from gateway.rng import Rng
from simulators.sampling import content_tokens, count_prompt_tokens, draw, echo_tokens, request_rng


def test_normal_is_clamped_to_three_sd_and_zero() -> None:
    rng = Rng(1)
    xs = [draw(rng, 100, 40, "normal") for _ in range(20_000)]
    assert min(xs) >= 0 and max(xs) <= 220
    assert min(xs) == 0  # mean - 3 sd < 0: the floor is 0, and it is hit
    assert 98 < statistics.fmean(xs) < 102


def test_lognormal_keeps_mean_and_sd_in_real_space() -> None:
    rng = Rng(2)
    xs = sorted(draw(rng, 840, 970, "lognormal") for _ in range(40_000))
    assert 800 < statistics.fmean(xs) < 880
    assert 880 < statistics.pstdev(xs) < 1060
    cv2 = (970 / 840) ** 2
    assert statistics.median(xs) == pytest.approx(840 / math.sqrt(1 + cv2), rel=0.03)  # ~550 ms
    assert min(xs) > 0


def test_sd_zero_is_a_constant_and_draws_nothing() -> None:
    rng = Rng(3)
    state = rng.getstate()
    assert draw(rng, 12.5, 0, "lognormal") == 12.5
    assert rng.getstate() == state


def test_request_streams_are_pure_functions_of_seed_backend_and_seq() -> None:
    assert request_rng(7, "a", 3).random() == request_rng(7, "a", 3).random()
    assert request_rng(7, "a", 3).random() != request_rng(7, "a", 4).random()
    assert request_rng(7, "a", 3).random() != request_rng(7, "b", 3).random()
    assert request_rng(7, "a", 3).random() != request_rng(8, "a", 3).random()


def test_content_and_echo() -> None:
    toks = content_tokens(Rng(4), 5)
    assert len(toks) == 5 and not toks[0].startswith(" ") and all(t.startswith(" ") for t in toks[1:])
    assert toks == content_tokens(Rng(4), 5)
    assert echo_tokens("one two  three", 10) == ["one", " two", " ", " three"]
    assert echo_tokens("one two three", 2) == ["one", " two"]
    assert echo_tokens("", 3) == []


def test_prompt_tokens_estimate() -> None:
    msgs = [{"role": "system", "content": "x" * 8}, {"role": "user", "content": [{"type": "text", "text": "abcde"}]}]
    assert count_prompt_tokens(msgs) == (3 + (3 + 2) + (3 + 2), "abcde")
    assert count_prompt_tokens("nope") == (0, "")
