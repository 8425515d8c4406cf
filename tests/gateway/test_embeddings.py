"""``POST /v1/embeddings`` through the whole pipeline, for OpenAI, vLLM and Gemini, with the official openai SDK."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import openai
import pytest

from gateway.config import hash_key
from tests.gateway.conftest import DEMO_KEY, GEMINI_PROVIDER, OTHER_KEY, make_settings, sdk


def settings(**over: Any) -> Any:
    raw: dict[str, Any] = {
        "consumers": [
            {"name": "demo", "key_sha256": hash_key(DEMO_KEY)},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY), "limits": {"tpm": 40}},
        ],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
            GEMINI_PROVIDER,
        ],
        "models": [
            {"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            {
                "name": "embed-openai",
                "kind": "embedding",
                "aliases": ["text-embedding"],
                "routes": [{"provider": "openai", "model": "text-embedding-3-small"}],
            },
            {"name": "embed-vllm", "kind": "embedding", "routes": [{"provider": "vllm", "model": "BAAI/bge-m3"}]},
            {
                "name": "embed-gemini",
                "kind": "embedding",
                "routes": [{"provider": "gemini", "model": "text-embedding-004"}],
            },
        ],
        **over,
    }
    return make_settings(**raw)


MODELS = ["embed-openai", "text-embedding", "embed-vllm", "embed-gemini"]


@pytest.mark.parametrize("model", MODELS)
async def test_sdk_embeddings(make_gateway: Any, model: str) -> None:
    client = sdk(await make_gateway(settings()))
    resp = await client.embeddings.create(model=model, input=["alpha", "beta"], dimensions=8)
    assert resp.model == model
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in resp.data)
    assert math.isclose(sum(x * x for x in resp.data[0].embedding), 1.0, rel_tol=1e-5)
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens == resp.usage.total_tokens >= 2
    again = await client.embeddings.create(model=model, input="alpha", dimensions=8)
    assert all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(again.data[0].embedding, resp.data[0].embedding, strict=True)
    )


@pytest.mark.parametrize("model", MODELS)
async def test_float_and_base64_agree(make_gateway: Any, model: str) -> None:
    client = await make_gateway(settings())
    auth = {"authorization": f"Bearer {DEMO_KEY}"}
    body = {"model": model, "input": "x", "dimensions": 4}
    floats = (await client.post("/v1/embeddings", json={**body, "encoding_format": "float"}, headers=auth)).json()
    b64 = (await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"}, headers=auth)).json()
    decoded = struct.unpack("<4f", base64.b64decode(b64["data"][0]["embedding"]))
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, floats["data"][0]["embedding"], strict=True))


@pytest.mark.parametrize(("model", "ok"), [("embed-openai", True), ("embed-vllm", True), ("embed-gemini", False)])
async def test_token_arrays(make_gateway: Any, model: str, ok: bool) -> None:
    client = sdk(await make_gateway(settings()))
    if ok:
        resp = await client.embeddings.create(model=model, input=[[1, 2, 3], [4, 5]])
        assert len(resp.data) == 2 and resp.usage.prompt_tokens == 5
    else:
        with pytest.raises(openai.BadRequestError, match="text only"):
            await client.embeddings.create(model=model, input=[[1, 2, 3]])


@pytest.mark.parametrize(
    ("path", "model", "fragment"),
    [
        ("/v1/embeddings", "gpt-4o-mini", "send it to /v1/chat/completions"),
        ("/v1/chat/completions", "embed-openai", "send it to /v1/embeddings"),
    ],
)
async def test_wrong_model_kind_is_400(make_gateway: Any, path: str, model: str, fragment: str) -> None:
    client = await make_gateway(settings())
    body: dict[str, Any] = {"model": model, "input": "x", "messages": [{"role": "user", "content": "x"}]}
    body.pop("messages" if path == "/v1/embeddings" else "input")
    resp = await client.post(path, json=body, headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "wrong_model_kind" and fragment in err["message"] and err["param"] == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "embed-openai"}, "input"),
        ({"model": "embed-openai", "input": ""}, "input"),
        ({"model": "embed-openai", "input": []}, "input"),
        ({"model": "embed-openai", "input": ["a", ""]}, "input"),
        ({"model": "embed-openai", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "embed-openai", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "embed-openai", "input": [1, "a"]}, "input"),
    ],
)
async def test_bad_bodies_are_400(make_gateway: Any, body: dict[str, Any], param: str) -> None:
    client = await make_gateway(settings())
    resp = await client.post("/v1/embeddings", json=body, headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert resp.status_code == 400 and resp.json()["error"]["param"].startswith(param)


async def test_needs_a_key_and_counts_against_the_token_quota(make_gateway: Any) -> None:
    client = await make_gateway(settings())
    assert (await client.post("/v1/embeddings", json={"model": "embed-openai", "input": "x"})).status_code == 401
    limited = sdk(client, OTHER_KEY)
    await limited.embeddings.create(model="embed-openai", input="y" * 100)  # 25 tokens of the 40 a minute
    with pytest.raises(openai.RateLimitError):
        await limited.embeddings.create(model="embed-openai", input="z" * 100)


async def test_fails_over_between_embedding_providers(make_gateway: Any) -> None:
    routes = [
        {"provider": "openai", "model": "text-embedding-3-small", "weight": 1},
        {"provider": "gemini", "model": "text-embedding-004", "weight": 0},
    ]
    s = settings(models=[{"name": "embed", "kind": "embedding", "routes": routes}])
    down = {"timeline": {"phases": [{"type": "outage", "mode": "503"}]}}
    client = sdk(await make_gateway(s, openai_profile=down))
    resp = await client.embeddings.with_raw_response.create(model="embed", input="hello")
    assert resp.parse().model == "embed" and len(resp.parse().data[0].embedding) == 1536
