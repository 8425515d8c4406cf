"""Tool calls and logprobs from the OpenAI and vLLM simulators, when asked, through the official SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulators.extras import arguments, pick_tool, pieces
from tests.simulators.conftest import MESSAGES, SimFactory

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "days", "unit"],
        },
    },
}
OTHER = {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}
RESULT = [
    *MESSAGES,
    {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
]


@pytest.mark.parametrize(
    ("payload", "called"),
    [
        ({"messages": MESSAGES, "tools": [WEATHER]}, "weather"),
        ({"messages": MESSAGES, "tools": [WEATHER], "tool_choice": "none"}, None),
        ({"messages": RESULT, "tools": [WEATHER]}, None),
        ({"messages": RESULT, "tools": [WEATHER], "tool_choice": "required"}, "weather"),
        (
            {
                "messages": MESSAGES,
                "tools": [WEATHER, OTHER],
                "tool_choice": {"type": "function", "function": {"name": "other"}},
            },
            "other",
        ),
        ({"messages": MESSAGES}, None),
    ],
)
def test_pick_tool(payload: dict[str, Any], called: str | None) -> None:
    tool = pick_tool(payload)
    assert (tool["name"] if tool else None) == called


def test_arguments_and_pieces() -> None:
    args = json.loads(arguments(WEATHER["function"]["parameters"], [" sunny", " day"]))
    assert args == {"city": "sunny", "days": 1, "unit": "c"}
    assert "".join(pieces("abcdefg", 3)) == "abcdefg" and len(pieces("ab", 5)) == 5


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
@pytest.mark.parametrize("stream", [False, True])
async def test_sdk_tool_call(make_sim: SimFactory, flavour: str, stream: bool) -> None:
    sim = make_sim(flavour, profile={"output": {"output-tokens": 6}})
    kw: dict[str, Any] = {"model": "m", "messages": MESSAGES, "tools": [WEATHER]}
    if not stream:
        resp = await sim.sdk.chat.completions.create(**kw)
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        call = choice.message.tool_calls[0]
        name, raw = call.function.name, call.function.arguments
    else:
        chunks = [c async for c in await sim.sdk.chat.completions.create(stream=True, **kw)]
        calls = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or ()]
        name = calls[0].function.name
        raw = "".join(tc.function.arguments or "" for tc in calls)
        assert calls[0].id and all(tc.index == 0 for tc in calls)
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert name == "weather" and set(json.loads(raw)) == {"city", "days", "unit"}


@pytest.mark.parametrize("stream", [False, True])
async def test_sdk_logprobs(make_sim: SimFactory, stream: bool) -> None:
    sim = make_sim(profile={"output": {"output-tokens": 4}})
    kw: dict[str, Any] = {"model": "m", "messages": MESSAGES, "logprobs": True, "top_logprobs": 2}
    if not stream:
        resp = await sim.sdk.chat.completions.create(**kw)
        lps = resp.choices[0].logprobs.content
        assert "".join(lp.token for lp in lps) == resp.choices[0].message.content
    else:
        chunks = [c async for c in await sim.sdk.chat.completions.create(stream=True, **kw)]
        lps = [lp for c in chunks for ch in c.choices if ch.logprobs for lp in ch.logprobs.content or ()]
    assert len(lps) == 4
    assert all(lp.logprob < 0 and [t.token for t in lp.top_logprobs][:1] == [lp.token] for lp in lps)
    assert all(len(lp.top_logprobs) == 2 and lp.top_logprobs[1].logprob < lp.logprob for lp in lps)


async def test_plain_requests_are_unchanged(make_sim: SimFactory) -> None:
    a, b = make_sim(seed=4), make_sim(seed=4)
    plain = await a.chat(stream=True)
    asked = await b.chat(stream=True, tools=[WEATHER], tool_choice="none")
    assert plain.content.replace(b"\\n", b"") == asked.content.replace(b"\\n", b"")
