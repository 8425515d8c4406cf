"""Every reply names the model the client asked for, never the upstream; the serving provider is told only to
keys with the ``served_by`` permission."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import hash_key
from tests.gateway.conftest import DEMO_KEY, GEMINI_PROVIDER, OTHER_KEY, make_settings, sdk

MSG: list[Any] = [{"role": "user", "content": "hello"}]


def settings() -> Any:
    return make_settings(
        consumers=[
            {"name": "demo", "key_sha256": hash_key(DEMO_KEY), "permissions": ["chat", "models", "served_by"]},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY)},
        ],
        providers=[
            {"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
            GEMINI_PROVIDER,
        ],
        models=[
            {
                "name": "gpt-4o-mini",
                "aliases": ["chat"],
                "routes": [{"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct"}],
            },
            {"name": "openai-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}]},
            {"name": "flash", "routes": [{"provider": "gemini", "model": "gemini-2.0-flash"}]},
        ],
    )


CASES = [
    ("gpt-4o-mini", "vllm/meta-llama/Llama-3.1-8B-Instruct"),
    ("chat", "vllm/meta-llama/Llama-3.1-8B-Instruct"),
    ("openai-mini", "openai/gpt-4o-mini-2024-07-18"),
    ("flash", "gemini/gemini-2.0-flash"),
]


@pytest.mark.parametrize(("model", "served"), CASES)
async def test_json_reply_names_the_requested_model(make_gateway: Any, model: str, served: str) -> None:
    client = sdk(await make_gateway(settings()))
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=MSG, max_tokens=4)
    resp = raw.parse()
    assert resp.model == model
    assert resp.id == f"chatcmpl-{raw.headers['x-request-id']}"
    assert resp.system_fingerprint is None and resp.service_tier is None
    assert "stop_reason" not in raw.text and "prompt_logprobs" not in raw.text
    assert raw.headers["x-faultline-served-by"] == served


@pytest.mark.parametrize(("model", "served"), CASES)
async def test_every_stream_chunk_names_the_requested_model(make_gateway: Any, model: str, served: str) -> None:
    client = sdk(await make_gateway(settings()))
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=MSG, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-faultline-served-by"] == served
    chunks = [c async for c in raw.parse()]
    assert chunks and {c.model for c in chunks} == {model}
    assert {c.id for c in chunks} == {f"chatcmpl-{raw.headers['x-request-id']}"}
    assert all(c.system_fingerprint is None for c in chunks)
    assert chunks[-1].usage is not None


async def test_served_by_needs_the_permission(make_gateway: Any) -> None:
    client = sdk(await make_gateway(settings()), OTHER_KEY)
    raw = await client.chat.completions.with_raw_response.create(model="chat", messages=MSG, max_tokens=4)
    assert "x-faultline-served-by" not in raw.headers
    assert "Llama" not in raw.text and "vllm" not in raw.text
