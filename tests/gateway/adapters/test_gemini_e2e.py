"""A gateway with a Gemini provider (the simulated Gemini behind it), through the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.conftest import DEMO_KEY, sdk, with_gemini

MSG: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
PROFILE = {"output": {"output-tokens": 5}}


async def test_completion(make_gateway: Any) -> None:
    client = sdk(await make_gateway(with_gemini(), gemini_profile=PROFILE))
    resp = await client.chat.completions.create(model="gemini-flash", messages=MSG, max_tokens=16)
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and len((choice.message.content or "").split()) == 5
    assert choice.finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 5


async def test_max_tokens_is_length(make_gateway: Any) -> None:
    client = sdk(await make_gateway(with_gemini(), gemini_profile=PROFILE))
    resp = await client.chat.completions.create(model="gemini-flash", messages=MSG, max_tokens=2)
    assert resp.choices[0].finish_reason == "length" and resp.usage and resp.usage.completion_tokens == 2


async def test_stream_with_usage(make_gateway: Any) -> None:
    client = sdk(await make_gateway(with_gemini(), gemini_profile=PROFILE))
    stream = await client.chat.completions.create(
        model="gemini-flash", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1
    *content, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 5
    assert content[0].choices[0].delta.role == "assistant"
    assert len("".join(c.choices[0].delta.content or "" for c in content).split()) == 5
    assert content[-1].choices[0].finish_reason == "stop"


async def test_stream_without_usage(make_gateway: Any) -> None:
    client = sdk(await make_gateway(with_gemini(), gemini_profile=PROFILE))
    stream = await client.chat.completions.create(model="gemini-flash", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None and c.choices for c in chunks)


@pytest.mark.parametrize(
    ("mode", "status"),
    [("rate_limit", 503), ("503", 503), ("500", 502)],
)
async def test_upstream_errors_are_openai_shaped(make_gateway: Any, mode: str, status: int) -> None:
    profile = {"timeline": {"phases": [{"type": "outage", "mode": mode}]}}
    client = sdk(await make_gateway(with_gemini(), gemini_profile=profile))
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gemini-flash", messages=MSG)
    assert info.value.status_code == status
    assert "Gemini" not in info.value.message and "RESOURCE_EXHAUSTED" not in info.value.message


@pytest.mark.parametrize("mode", ["reset", "error", "eof"])
async def test_a_gemini_stream_cut_mid_answer_ends_with_an_error_event(make_gateway: Any, mode: str) -> None:
    profile = {
        "output": {"output-tokens": 8},
        "timeline": {"phases": [{"type": "slow-stream", "cut-after-tokens": 3, "cut-mode": mode}]},
    }
    client = await make_gateway(with_gemini(), gemini_profile=profile)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gemini-flash", "messages": MSG, "stream": True},
        headers={"authorization": f"Bearer {DEMO_KEY}"},
    )
    events = [e for e in resp.text.split("\n\n") if e]
    assert len([e for e in events if '"content"' in e]) >= 1
    assert events[-1].startswith('data: {"error"') and "[DONE]" not in resp.text


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_blocked_for_safety_is_content_filter(make_gateway: Any, stream: bool) -> None:
    profile = {"blocked-phrases": ["forbidden"]}
    client = sdk(await make_gateway(with_gemini(), gemini_profile=profile))
    msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "something forbidden"}]
    if stream:
        chunks = [
            c async for c in await client.chat.completions.create(model="gemini-flash", messages=msgs, stream=True)
        ]
        assert [c.choices[0].finish_reason for c in chunks if c.choices] == ["content_filter"]
    else:
        resp = await client.chat.completions.create(model="gemini-flash", messages=msgs)
        assert resp.choices[0].finish_reason == "content_filter" and resp.choices[0].message.content is None
