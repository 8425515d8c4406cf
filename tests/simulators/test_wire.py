"""Wire formats of both flavours, read by the official SDK and asserted on the raw bytes."""

from __future__ import annotations

import json

import pytest

from gateway.clock import FakeClock
from simulators.failures import go_duration
from tests.simulators.conftest import SimFactory


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_sdk_reads_a_chat_completion(make_sim: SimFactory, flavour: str) -> None:
    sim = make_sim(flavour)
    r = await sim.sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "length"  # instant answers 16 tokens, capped at 5
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5
    assert r.choices[0].message.content is not None and len(r.choices[0].message.content.split()) == 5


async def test_openai_json_body_and_headers(make_sim: SimFactory) -> None:
    sim = make_sim("openai")
    resp = await sim.chat()
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    assert int(resp.headers["openai-processing-ms"]) >= 0
    body = resp.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    msg = body["choices"][0]["message"]
    assert msg["refusal"] is None and body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_stream_chunks_usage_and_done(make_sim: SimFactory, flavour: str) -> None:
    sim = make_sim(flavour)
    resp = await sim.chat(stream=True, stream_options={"include_usage": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sim.events(resp)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    body = chunks[:-1]
    tokens = [c["choices"][0]["delta"].get("content") for c in body[1:-1]]
    assert len(tokens) == 16 and all(tokens)
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    assert not body[-1]["choices"][0]["delta"].get("content")
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 16
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 16


HEAD = {
    "openai": '"object":"chat.completion.chunk","created":1767225600,"model":"m","service_tier":"default",'
    '"system_fingerprint":"fp_f4ul7l1n3","choices":',
    "vllm": '"object":"chat.completion.chunk","created":1767225600,"model":"m","choices":',
}
EXPECTED = {
    "openai": [
        '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]'
        ',"usage":null}',
        '[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}],"usage":null}',
        '[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}',
        '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}',
        '[],"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10,'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
        '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}',
    ],
    "vllm": [
        '[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
        '[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}',
        '[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}]}',
        '[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}',
        '[],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}',
    ],
}


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_stream_bytes_exactly(make_sim: SimFactory, flavour: str) -> None:
    """The whole SSE body, byte for byte: OpenAI's chunk layout, and vLLM's (its pydantic ``exclude_unset``)."""
    sim = make_sim(flavour, {"output": {"mode": "echo"}}, clock=FakeClock())
    resp = await sim.http.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "hi there"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    cid = json.loads(sim.events(resp)[0])["id"]
    head = f'data: {{"id":"{cid}",' + HEAD[flavour]
    assert resp.text == "".join(f"{head}{e}\n\n" for e in EXPECTED[flavour]) + "data: [DONE]\n\n"


async def test_stream_without_include_usage_has_no_usage_key(make_sim: SimFactory) -> None:
    sim = make_sim("openai")
    events = sim.events(await sim.chat(stream=True))
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_sdk_stream_accumulates_content(make_sim: SimFactory) -> None:
    sim = make_sim("openai")
    stream = await sim.sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert usage is not None and usage.completion_tokens == 16
    assert len(text.split()) == 16


async def test_echo_mode_returns_the_prompt(make_sim: SimFactory) -> None:
    sim = make_sim("openai", {"output": {"mode": "echo"}})
    r = await sim.sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "one two three"}])
    assert r.choices[0].message.content == "one two three"
    assert r.usage is not None and r.usage.completion_tokens == 3


async def test_models_lists(make_sim: SimFactory) -> None:
    o = await make_sim("openai", "openai-gpt-4o").sdk.models.list()
    assert [m.id for m in o.data] == ["gpt-4o"]
    sim = make_sim("vllm", "vllm-8b-h100")
    card = (await sim.http.get("/v1/models")).json()["data"][0]
    assert card["owned_by"] == "vllm" and card["max_model_len"] == 8192
    assert card["root"] == card["id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert {"object", "created", "parent", "permission"} <= set(card)


async def test_unknown_route_and_bad_body_are_openai_errors(make_sim: SimFactory) -> None:
    sim = make_sim("openai")
    r = await sim.http.get("/v1/nothing")
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = await make_sim("vllm").http.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404 and r.json()["error"]["type"] == "NotFoundError"
    r = await sim.http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await sim.http.post("/v1/chat/completions", json={"model": "m", "messages": [], "max_tokens": 0})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.12, "120ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3725, "1h2m5s")]
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
