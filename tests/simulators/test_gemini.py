"""The simulated Gemini against the official google-genai SDK, and its wire format byte by byte."""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from simulators import SimulatorApp, create_app

MODEL = "gemini-2.0-flash"
PROFILE: dict[str, Any] = {"model": MODEL, "output": {"output-tokens": 6}}


def client(app: SimulatorApp) -> tuple[genai.Client, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")
    opts = types.HttpOptions(
        base_url="http://sim", httpx_async_client=http, retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key="AIza-test", http_options=opts), http


@pytest.fixture
async def sdk() -> Any:
    c, http = client(create_app("gemini", PROFILE, seed=3))
    yield c
    await http.aclose()


async def test_sdk_generate(sdk: genai.Client) -> None:
    cfg = types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=50)
    r = await sdk.aio.models.generate_content(model=MODEL, contents="hello there", config=cfg)
    assert r.text and len(r.text.split()) == 6
    assert r.candidates is not None and r.candidates[0].finish_reason == types.FinishReason.STOP
    u = r.usage_metadata
    assert u is not None and u.candidates_token_count == 6
    assert u.total_token_count == (u.prompt_token_count or 0) + 6
    assert r.model_version == MODEL and r.response_id


async def test_sdk_max_tokens_is_max_tokens(sdk: genai.Client) -> None:
    cfg = types.GenerateContentConfig(max_output_tokens=2)
    r = await sdk.aio.models.generate_content(model=MODEL, contents="hi", config=cfg)
    assert r.candidates is not None and r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata is not None and r.usage_metadata.candidates_token_count == 2


async def test_sdk_stream(sdk: genai.Client) -> None:
    chunks = [c async for c in await sdk.aio.models.generate_content_stream(model=MODEL, contents="hi")]
    text = "".join(c.text or "" for c in chunks)
    assert len(text.split()) == 6
    last = chunks[-1]
    assert last.candidates is not None and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert last.usage_metadata is not None and last.usage_metadata.candidates_token_count == 6


async def test_sdk_embed(sdk: genai.Client) -> None:
    cfg = types.EmbedContentConfig(output_dimensionality=8)
    texts: list[types.PartUnion] = ["a", "b"]
    one = await sdk.aio.models.embed_content(model="text-embedding-004", contents=texts, config=cfg)
    assert one.embeddings is not None and [len(e.values or []) for e in one.embeddings] == [8, 8]
    again = await sdk.aio.models.embed_content(model="text-embedding-004", contents="a", config=cfg)
    assert again.embeddings is not None and again.embeddings[0].values == one.embeddings[0].values
    v = one.embeddings[0].values or []
    assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6)
    assert one.embeddings[1].values != v


async def test_sdk_rate_limit_error() -> None:
    app = create_app("gemini", {**PROFILE, "timeline": {"phases": [{"type": "outage", "mode": "rate_limit"}]}})
    c, http = client(app)
    with pytest.raises(genai_errors.ClientError) as info:
        await c.aio.models.generate_content(model=MODEL, contents="x")
    await http.aclose()
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    details = info.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"} in details


async def test_sdk_server_error() -> None:
    app = create_app("gemini", {**PROFILE, "timeline": {"phases": [{"type": "outage", "mode": "503"}]}})
    c, http = client(app)
    with pytest.raises(genai_errors.ServerError) as info:
        await c.aio.models.generate_content(model=MODEL, contents="x")
    await http.aclose()
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"


async def test_sdk_lists_models(sdk: genai.Client) -> None:
    names = [m.name async for m in await sdk.aio.models.list()]
    assert names == [f"models/{MODEL}"]


# --- the wire, without the SDK -------------------------------------------------------------------------------


async def post(app: SimulatorApp, path: str, body: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as http:
        return await http.post(path, content=orjson.dumps(body), headers=headers)


BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


async def test_sse_frames_are_whole_responses_without_done() -> None:
    app = create_app("gemini", PROFILE)
    r = await post(app, f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", BODY)
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\r\n\r\n") if f]
    assert all(f.startswith("data: ") for f in frames) and "[DONE]" not in r.text
    docs = [orjson.loads(f[6:]) for f in frames]
    assert all(d["candidates"][0]["content"]["role"] == "model" for d in docs)
    assert docs[-1]["candidates"][0]["finishReason"] == "STOP"
    assert docs[-1]["usageMetadata"]["candidatesTokenCount"] == 6


async def test_stream_without_alt_sse_is_a_json_array() -> None:
    app = create_app("gemini", PROFILE)
    r = await post(app, f"/v1beta/models/{MODEL}:streamGenerateContent", BODY)
    docs = orjson.loads(r.content)
    assert isinstance(docs, list) and len(docs) == 7
    assert docs[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_api_key_header_checked() -> None:
    app = create_app("gemini", {**PROFILE, "api_keys": ["good"]})
    bad = await post(app, f"/v1beta/models/{MODEL}:generateContent", BODY, **{"x-goog-api-key": "bad"})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert bad.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    good = await post(app, f"/v1beta/models/{MODEL}:generateContent", BODY, **{"x-goog-api-key": "good"})
    assert good.status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({**BODY, "generationConfig": {"maxOutputTokens": 0}}, "max_output_tokens"),
    ],
)
async def test_invalid_requests(body: dict[str, Any], fragment: str) -> None:
    r = await post(create_app("gemini", PROFILE), f"/v1beta/models/{MODEL}:generateContent", body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT" and fragment in err["message"]


async def test_daily_quota_has_no_retry_info() -> None:
    profile = {**PROFILE, "timeline": {"phases": [{"type": "budget-exhaustion", "after-tokens": 0}]}}
    r = await post(create_app("gemini", profile), f"/v1beta/models/{MODEL}:generateContent", BODY)
    err = r.json()["error"]
    assert r.status_code == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    assert [d["@type"].rsplit(".", 1)[1] for d in err["details"]] == ["QuotaFailure"]
    assert "PerDay" in err["details"][0]["violations"][0]["quotaId"]


async def test_unknown_method_is_not_found() -> None:
    r = await post(create_app("gemini", PROFILE), f"/v1beta/models/{MODEL}:countTokens", BODY)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


async def test_sdk_function_call_round_trip(sdk: genai.Client) -> None:
    decl = types.FunctionDeclaration(
        name="weather",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])])
    r = await sdk.aio.models.generate_content(model=MODEL, contents="weather in Oslo?", config=cfg)
    assert r.function_calls and r.function_calls[0].name == "weather" and "city" in (r.function_calls[0].args or {})
    chunks = [c async for c in await sdk.aio.models.generate_content_stream(model=MODEL, contents="x", config=cfg)]
    assert [fc.name for c in chunks for fc in c.function_calls or ()] == ["weather"]
    history = [
        types.Content(role="user", parts=[types.Part(text="weather in Oslo?")]),
        types.Content(role="model", parts=[types.Part(function_call=r.function_calls[0])]),
        types.Content(role="user", parts=[types.Part.from_function_response(name="weather", response={"temp": 3})]),
    ]
    answer = await sdk.aio.models.generate_content(model=MODEL, contents=history, config=cfg)
    assert answer.text and not answer.function_calls


async def test_sdk_sees_a_blocked_prompt() -> None:
    c, http = client(create_app("gemini", {**PROFILE, "blocked-phrases": ["forbidden"]}))
    r = await c.aio.models.generate_content(model=MODEL, contents="something forbidden")
    await http.aclose()
    assert not r.candidates
    assert r.prompt_feedback is not None and r.prompt_feedback.block_reason == types.BlockedReason.SAFETY
