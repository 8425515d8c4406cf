"""Every malformed request gets a clear, OpenAI-shaped 4xx — never a 5xx, never a framework default."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.gateway.conftest import DEMO_KEY

AUTH = {"authorization": f"Bearer {DEMO_KEY}", "content-type": "application/json"}
MSG = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, **fields})


CASES: list[tuple[str, bytes, dict[str, str], int, str | None]] = [
    # (name, body, extra headers, status, param)
    ("truncated json", b'{"model": "gpt-4o-mini", "messages": [', {}, 400, None),
    ("json array", b"[1, 2]", {}, 400, None),
    ("json string", b'"hello"', {}, 400, None),
    ("empty body", b"", {}, 400, None),
    ("nan literal", b'{"model": "gpt-4o-mini", "temperature": NaN, "messages": []}', {}, 400, None),
    (
        "invalid utf-8",
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        {},
        400,
        None,
    ),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, {}, 400, None),
    ("missing model", orjson.dumps({"messages": MSG}), {}, 400, "model"),
    ("model not a string", body(model=123), {}, 400, "model"),
    ("missing messages", orjson.dumps({"model": "gpt-4o-mini"}), {}, 400, "messages"),
    ("messages empty", body(messages=[]), {}, 400, "messages"),
    ("messages not a list", body(messages="hi"), {}, 400, "messages"),
    ("unknown role", body(messages=[{"role": "wizard", "content": "x"}]), {}, 400, "messages[0].role"),
    ("content a number", body(messages=[{"role": "user", "content": 42}]), {}, 400, "messages[0].content"),
    ("user without content", body(messages=[{"role": "user"}]), {}, 400, "messages[0]"),
    ("tool without id", body(messages=[{"role": "tool", "content": "x"}]), {}, 400, "messages[0]"),
    ("bad content part", body(messages=[{"role": "user", "content": [{"type": "video"}]}]), {}, 400, None),
    ("negative max_tokens", body(max_tokens=-5), {}, 400, "max_tokens"),
    ("huge max_tokens", body(max_tokens=10**12), {}, 400, "max_tokens"),
    ("max_tokens a string", body(max_tokens="100"), {}, 400, "max_tokens"),
    ("zero max_completion_tokens", body(max_completion_tokens=0), {}, 400, "max_completion_tokens"),
    ("temperature too high", body(temperature=3.5), {}, 400, "temperature"),
    ("temperature negative", body(temperature=-0.1), {}, 400, "temperature"),
    ("top_p above one", body(top_p=1.5), {}, 400, "top_p"),
    ("n zero", body(n=0), {}, 400, "n"),
    ("stream not a bool", body(stream="yes"), {}, 400, "stream"),
    ("stream_options without stream", body(stream_options={"include_usage": True}), {}, 400, None),
    ("five stop sequences", body(stop=["a", "b", "c", "d", "e"]), {}, 400, "stop"),
    ("frequency_penalty out of range", body(frequency_penalty=5), {}, 400, "frequency_penalty"),
    ("top_logprobs out of range", body(top_logprobs=50), {}, 400, "top_logprobs"),
    ("user too long", body(user="u" * 1000), {}, 400, "user"),
    ("unknown model", body(model="gpt-9"), {}, 404, "model"),
    ("oversize body", body(messages=[{"role": "user", "content": "x" * 2_000_000}]), {}, 413, None),
    ("text/plain content type", body(), {"content-type": "text/plain"}, 415, None),
    ("no api key", body(), {"authorization": ""}, 401, None),
    ("wrong api key", body(), {"authorization": "Bearer fl-nope"}, 401, None),
    ("bearer without token", body(), {"authorization": "Bearer "}, 401, None),
    ("basic auth scheme", body(), {"authorization": "Basic Zm9vOmJhcg=="}, 401, None),
]


@pytest.mark.parametrize(("name", "raw", "headers", "status", "param"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_gets_openai_shaped_4xx(
    make_gateway: Any, name: str, raw: bytes, headers: dict[str, str], status: int, param: str | None
) -> None:
    client = await make_gateway()
    sent = {**AUTH, **headers}
    sent = {k: v for k, v in sent.items() if v}
    resp = await client.post("/v1/chat/completions", content=raw, headers=sent)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    assert "Traceback" not in err["message"] and "pydantic" not in err["message"].lower()
    if param is not None:
        assert err["param"] == param
        assert param in err["message"] or status != 400
    assert resp.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "sent",
    ["has space", "a" * 129, "semi;colon", 'quote"d', "new%0Aline", "<script>", ""],
)
async def test_unsafe_request_ids_are_replaced(make_gateway: Any, sent: str) -> None:
    client = await make_gateway()
    resp = await client.post("/v1/chat/completions", content=body(), headers={**AUTH, "x-request-id": sent})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] != sent
    assert resp.headers["x-request-id"].startswith("req_")


async def test_valid_request_id_is_echoed(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.post("/v1/chat/completions", content=body(), headers={**AUTH, "x-request-id": "trace-1.A_b"})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "trace-1.A_b"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v1/chat/completions", 405), ("GET", "/v2/x", 404)])
async def test_unknown_routes_and_methods_are_openai_shaped(
    make_gateway: Any, method: str, path: str, status: int
) -> None:
    client = await make_gateway()
    resp = await client.request(method, path, headers=AUTH)
    assert resp.status_code == status
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
