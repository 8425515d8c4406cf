"""The token estimate reserved before a call and the charge after it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.quota.estimate import Estimate, actual_charge, estimate
from gateway.settings.quota import QuotaSettings

QS = QuotaSettings(default_max_tokens=100)


@pytest.mark.parametrize(
    ("payload", "prompt", "completion"),
    [
        ({"messages": [{"role": "user", "content": "x" * 40}]}, 3 + 4 + 10, 100),
        ({"messages": [{"role": "user", "content": "x" * 41}], "max_tokens": 7}, 3 + 4 + 11, 7),
        ({"messages": [], "max_tokens": 7, "max_completion_tokens": 9}, 3, 9),
        ({"messages": [{"role": "user", "content": "abcd"}], "max_tokens": 5, "n": 3}, 3 + 4 + 1, 15),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 8}]}], "max_tokens": 1},
            3 + 4 + 2,
            1,
        ),
        ({"messages": "junk", "max_tokens": True, "n": 0}, 3, 100),
        ({}, 3, 100),
    ],
)
def test_estimate(payload: dict[str, Any], prompt: int, completion: int) -> None:
    assert estimate(payload, QS) == Estimate(prompt, completion)


def test_configured_chars_per_token_and_overhead() -> None:
    qs = QuotaSettings(chars_per_token=2.0, message_overhead_tokens=0)
    e = estimate({"messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": "ab"}]}, qs)
    assert e.prompt == 3 + 2 + 1


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "charged"),
    [
        (30, 12, 42),  # usage reported
        (0, 12, 50 + 12),  # stream cut before its usage chunk: delivered + estimated prompt
        (0, 0, 0),  # nothing happened upstream
        (30, 0, 30),
    ],
)
def test_actual_charge(tokens_in: int, tokens_out: int, charged: int) -> None:
    assert actual_charge(tokens_in, tokens_out, Estimate(prompt=50, completion=200)) == charged
