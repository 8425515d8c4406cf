"""What reaches the upstream: OpenAI and vLLM get the client's fields unchanged, Gemini gets them translated."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.transport import Transport
from tests.gateway.conftest import DEMO_KEY, Recording, with_gemini

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": SCHEMA}}]
FIELDS: dict[str, Any] = {
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA, "strict": True}},
    "logprobs": True,
    "top_logprobs": 2,
    "n": 1,
    "seed": 42,
    "stop": ["END"],
    "temperature": 0.3,
    "top_k": 40,
    "vendor_extension": {"nested": [1, 2]},
}
MESSAGES = [{"role": "user", "content": "weather in Oslo?"}]


async def call(make_gateway: Any, model: str, **extra: Any) -> Recording:
    box: list[Recording] = []

    def wrap(inner: Transport) -> Transport:
        box.append(Recording(inner))
        return box[0]

    client = await make_gateway(with_gemini(), wrap=wrap)
    body = {"model": model, "messages": MESSAGES, **FIELDS, **extra}
    resp = await client.post(
        "/v1/chat/completions", content=orjson.dumps(body), headers={"authorization": f"Bearer {DEMO_KEY}"}
    )
    assert resp.status_code == 200, resp.text
    return box[0]


@pytest.mark.parametrize(
    ("model", "upstream"), [("gpt-4o-mini", "gpt-4o-mini"), ("llama", "meta-llama/Llama-3.1-8B-Instruct")]
)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_compatible_upstreams_get_every_field_unchanged(
    make_gateway: Any, model: str, upstream: str, stream: bool
) -> None:
    rec = await call(make_gateway, model, stream=stream)
    url, _, sent = rec.sent[-1]
    assert url.endswith("/v1/chat/completions")
    assert sent["model"] == upstream and sent["messages"] == MESSAGES
    assert {k: sent[k] for k in FIELDS} == FIELDS
    if stream:
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_gemini_gets_them_translated(make_gateway: Any) -> None:
    rec = await call(make_gateway, "gemini-flash")
    url, headers, sent = rec.sent[-1]
    assert url == "http://gemini.sim/v1beta/models/gemini-2.0-flash:generateContent"
    assert "authorization" not in headers
    assert headers["traceparent"].startswith("00-")  # the trace context goes to every kind of upstream
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}]
    assert sent["generationConfig"] == {
        "temperature": 0.3,
        "seed": 42,
        "candidateCount": 1,
        "logprobs": 2,
        "responseLogprobs": True,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }
    decl = {"name": "weather", "description": "d", "parametersJsonSchema": SCHEMA}
    assert sent["tools"] == [{"functionDeclarations": [decl]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}
    assert set(sent) == {"contents", "generationConfig", "tools", "toolConfig"}


async def test_gemini_stream_url(make_gateway: Any) -> None:
    rec = await call(make_gateway, "gemini-flash", stream=True)
    assert rec.sent[-1][0].endswith("/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
