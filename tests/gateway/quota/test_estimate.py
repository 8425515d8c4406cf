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
        # a message that is not an object counts its strings too; a name counts, a bad limit does not
        ({"messages": ["abcd", {"role": "user", "content": "abcd", "name": "bob"}], "max_tokens": 0}, 3 + 5 + 6, 100),
        ({"messages": [], "max_completion_tokens": True, "max_tokens": 6, "n": True}, 3, 6),
        ({"messages": [], "max_completion_tokens": 2.0, "max_tokens": "6", "n": 2}, 3, 200),
        (  # tool calls: the function's name and arguments count, not the types
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
                "max_tokens": 3,
            },
            3 + 4 + 1,
            3,
        ),
        ({"messages": None, "input": "abcd"}, 3, 100),  # messages given (null): a chat request, not embeddings
        ({"input": "abcdefgh"}, 2, 0),  # embeddings
    ],
)
def test_estimate(payload: dict[str, Any], prompt: int, completion: int) -> None:
    got = estimate(payload, QS)
    assert got == Estimate(prompt, completion)
    assert type(got) is Estimate and (got.prompt, got.completion, got.total) == (
        prompt,
        completion,
        prompt + completion,
    )


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
