"""A tool-calling round trip (call -> result -> answer) and logprobs, through the gateway, with the openai SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageFunctionToolCall

from tests.gateway.conftest import sdk, with_gemini

TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama", "gemini-flash"])
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_round_trip(make_gateway: Any, model: str, stream: bool) -> None:
    client = sdk(await make_gateway(with_gemini(), openai_profile={"output": {"output-tokens": 5}}))
    if stream:
        chunks = [
            c async for c in await client.chat.completions.create(model=model, messages=ASK, tools=[TOOL], stream=True)
        ]
        calls = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or ()]
        assert all(tc.function is not None for tc in calls)
        call_id, name = calls[0].id, calls[0].function.name if calls[0].function else None
        args = "".join(tc.function.arguments or "" for tc in calls if tc.function)
        assert {c.model for c in chunks} == {model}
    else:
        resp = await client.chat.completions.create(model=model, messages=ASK, tools=[TOOL])
        assert resp.choices[0].finish_reason == "tool_calls" and resp.model == model
        assert resp.choices[0].message.tool_calls is not None
        call = resp.choices[0].message.tool_calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        call_id, name, args = call.id, call.function.name, call.function.arguments
    assert name == "weather" and "city" in json.loads(args)
    follow = [
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp": 3}'},
    ]
    answer = await client.chat.completions.create(model=model, messages=follow, tools=[TOOL])
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls


async def test_logprobs_reach_the_client(make_gateway: Any) -> None:
    client = sdk(await make_gateway())
    resp = await client.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, logprobs=True, top_logprobs=3, max_tokens=4
    )
    assert resp.choices[0].logprobs is not None and resp.choices[0].logprobs.content is not None
    content = resp.choices[0].logprobs.content
    assert "".join(lp.token for lp in content) == resp.choices[0].message.content
    assert all(len(lp.top_logprobs) == 3 and lp.top_logprobs[0].token == lp.token for lp in content)
