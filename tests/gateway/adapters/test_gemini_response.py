"""Gemini responses, stream frames and errors -> OpenAI shapes and the adapter exception tree."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.adapters.gemini_response import StreamTranslator, classify, finish_reason, to_completion, usage
from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamServerError,
)


@pytest.mark.parametrize(
    ("gemini", "called", "openai"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("LANGUAGE", False, "stop"),
        ("OTHER", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("FINISH_REASON_UNSPECIFIED", False, None),
        (None, False, None),
    ],
)
def test_finish_reasons(gemini: str | None, called: bool, openai: str | None) -> None:
    assert finish_reason(gemini, called) == openai


def test_usage() -> None:
    meta = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 18,
    }
    assert usage(meta) == {
        "prompt_tokens": 10,
        "completion_tokens": 8,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert usage(None) is None


def cand(parts: list[dict[str, Any]], reason: str | None = "STOP", index: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if reason:
        c["finishReason"] = reason
    return c


def test_completion_text_tool_calls_and_thoughts() -> None:
    body = {
        "responseId": "r1",
        "candidates": [
            cand([{"text": "thinking", "thought": True}, {"text": "a"}, {"text": "b"}]),
            cand([{"functionCall": {"name": "f", "args": {"x": 1}}}], index=1),
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    }
    out = to_completion(body, model="m", created=7)
    assert (out["id"], out["object"], out["created"], out["model"]) == ("chatcmpl-r1", "chat.completion", 7, "m")
    first, second = out["choices"]
    assert first["message"] == {"role": "assistant", "content": "ab", "refusal": None}
    assert first["finish_reason"] == "stop"
    assert second["message"]["content"] is None
    assert second["message"]["tool_calls"] == [
        {"id": "call_r1_1_0", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    ]
    assert second["finish_reason"] == "tool_calls"
    assert out["usage"]["total_tokens"] == 5


def test_blocked_prompt_is_content_filter() -> None:
    out = to_completion({"promptFeedback": {"blockReason": "SAFETY"}}, model="m", created=0)
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] is None


def test_stream_frames_then_usage() -> None:
    tr = StreamTranslator(model="m", created=9)
    frames: list[dict[str, Any]] = [
        {"responseId": "r", "candidates": [cand([{"text": "he"}], None)], "usageMetadata": {"promptTokenCount": 2}},
        {"responseId": "r", "candidates": [cand([{"text": "llo"}], None)]},
        {
            "responseId": "r",
            "candidates": [cand([{"functionCall": {"name": "f", "args": {}}}])],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5},
        },
    ]
    chunks = [tr.frame(f) for f in frames]
    assert all(c is not None and c["id"] == "chatcmpl-r" and c["created"] == 9 for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c]
    assert deltas[0] == {"role": "assistant", "content": "he"}
    assert deltas[1] == {"content": "llo"}
    assert deltas[2]["tool_calls"][0]["index"] == 0 and deltas[2]["tool_calls"][0]["function"]["name"] == "f"
    assert chunks[2] and chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert tr.finished
    tail = tr.finish()
    assert tail is not None and tail["choices"] == [] and tail["usage"]["completion_tokens"] == 3


def test_stream_blocked_prompt() -> None:
    tr = StreamTranslator(model="m", created=0)
    chunk = tr.frame({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    assert chunk and chunk["choices"][0]["finish_reason"] == "content_filter" and tr.finished
    assert tr.frame({"responseId": "x"}) is None


def err(status: int, name: str, message: str = "m", details: list[Any] | None = None) -> bytes:
    body: dict[str, Any] = {"code": status, "message": message, "status": name}
    if details is not None:
        body["details"] = details
    return orjson.dumps({"error": body})


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}


def quota(quota_id: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": quota_id}]}


@pytest.mark.parametrize(
    ("status", "raw", "kind", "extra"),
    [
        (429, err(429, "RESOURCE_EXHAUSTED", details=[quota("PerMinute"), RETRY]), UpstreamRateLimited, 12.5),
        (429, err(429, "RESOURCE_EXHAUSTED"), UpstreamRateLimited, None),
        (
            429,
            err(429, "RESOURCE_EXHAUSTED", details=[quota("GenerateRequestsPerDay")]),
            UpstreamQuotaExhausted,
            None,
        ),
        (500, err(500, "INTERNAL"), UpstreamServerError, 500),
        (503, err(503, "UNAVAILABLE"), UpstreamServerError, 503),
        (504, err(504, "DEADLINE_EXCEEDED"), UpstreamServerError, 504),
        (400, err(400, "INVALID_ARGUMENT"), UpstreamClientError, 400),
        (400, err(400, "FAILED_PRECONDITION"), UpstreamClientError, 400),
        (
            400,
            err(400, "INVALID_ARGUMENT", details=[{"@type": "x/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
            UpstreamClientError,
            401,
        ),
        (403, err(403, "PERMISSION_DENIED"), UpstreamClientError, 403),
        (404, err(404, "NOT_FOUND"), UpstreamClientError, 404),
        (502, b"<html>bad gateway</html>", UpstreamServerError, 502),
        (429, b"[" + err(429, "RESOURCE_EXHAUSTED", details=[RETRY]) + b"]", UpstreamRateLimited, 12.5),
    ],
)
def test_errors(status: int, raw: bytes, kind: type[UpstreamError], extra: Any) -> None:
    exc = classify("gemini", status, raw)
    assert type(exc) is kind
    if isinstance(exc, UpstreamRateLimited):
        assert exc.retry_after == extra
    elif extra is not None:
        assert exc.status == extra
