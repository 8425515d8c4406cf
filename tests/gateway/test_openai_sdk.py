"""The official openai SDK, unchanged, against the gateway in front of the simulators."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.gateway.conftest import DEMO_KEY, OTHER_KEY, make_settings, sdk

MSG: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama"])
async def test_non_streaming_completion(make_gateway: Any, model: str) -> None:
    client = sdk(await make_gateway())
    resp = await client.chat.completions.create(model=model, messages=MSG, max_tokens=16)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason in {"stop", "length"}
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert 1 <= resp.usage.completion_tokens <= 16


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama"])
async def test_streaming_with_usage(make_gateway: Any, model: str) -> None:
    client = sdk(await make_gateway())
    stream = await client.chat.completions.create(
        model=model, messages=MSG, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in content)
    text = "".join(c.choices[0].delta.content or "" for c in content if c.choices)
    assert text
    assert content[-1].choices[0].finish_reason in {"stop", "length"}
    assert last.usage.completion_tokens == sum(1 for c in content if c.choices and c.choices[0].delta.content)


async def test_streaming_without_usage_has_no_usage_chunk(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5, "stream": True},
        headers={"authorization": f"Bearer {DEMO_KEY}"},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line for line in resp.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert '"usage"' not in resp.text


async def test_models_lists_the_configured_groups(make_gateway: Any) -> None:
    client = sdk(await make_gateway())
    page = await client.models.list()
    assert sorted(m.id for m in page.data) == ["gpt-4o-mini", "llama"]


async def test_unknown_key_is_authentication_error(make_gateway: Any) -> None:
    client = sdk(await make_gateway(), key="fl-wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


async def test_unknown_model_is_not_found(make_gateway: Any) -> None:
    client = sdk(await make_gateway())
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-9", messages=MSG)
    assert info.value.code == "model_not_found"


async def test_rate_limit_is_rate_limit_error(make_gateway: Any) -> None:
    client = sdk(await make_gateway(), key=OTHER_KEY)  # rpm 2
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=4)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=4)
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1


async def test_upstream_outage_is_a_5xx_error(make_gateway: Any) -> None:
    settings = make_settings()
    outage = {"base": "instant", "timeline": [{"type": "outage", "start_s": 0, "end_s": 3600, "mode": 503}]}
    client = sdk(await make_gateway(settings, openai_profile=outage))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code in (502, 503)
    assert "Traceback" not in str(info.value.body)
