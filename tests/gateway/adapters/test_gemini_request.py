"""OpenAI chat request -> Gemini GenerateContentRequest, table by table."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.adapters.gemini_request import TranslationError, to_gemini

USER = {"role": "user", "content": "hi"}


def tr(**payload: Any) -> dict[str, Any]:
    return to_gemini({"model": "m", "messages": [USER], **payload})


def test_roles_system_and_merging() -> None:
    out = to_gemini(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": "d"},
            ]
        }
    )
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "and kind"}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]},
        {"role": "user", "parts": [{"text": "d"}]},
    ]


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "text", "text": "x"}, {"text": "x"}),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?x=1"}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png?x=1"}},
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        ),
        (
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        ),
    ],
)
def test_multipart_content(part: dict[str, Any], expected: dict[str, Any]) -> None:
    out = to_gemini({"messages": [{"role": "user", "content": [part]}]})
    assert out["contents"][0]["parts"] == [expected]


@pytest.mark.parametrize(
    ("payload", "config"),
    [
        ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "topP": 0.9}),
        ({"max_tokens": 10}, {"maxOutputTokens": 10}),
        ({"max_tokens": 10, "max_completion_tokens": 20}, {"maxOutputTokens": 20}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"seed": 7, "n": 2}, {"seed": 7, "candidateCount": 2}),
        ({"presence_penalty": 0.5, "frequency_penalty": -0.5}, {"presencePenalty": 0.5, "frequencyPenalty": -0.5}),
        ({"logprobs": True, "top_logprobs": 3}, {"responseLogprobs": True, "logprobs": 3}),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
            {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}},
        ),
        ({"response_format": {"type": "text"}}, None),
        ({"parallel_tool_calls": False, "user": "u", "logit_bias": {"1": 2}, "vendor_x": 1}, None),
    ],
)
def test_generation_config(payload: dict[str, Any], config: dict[str, Any] | None) -> None:
    out = tr(**payload)
    assert out.get("generationConfig") == config
    assert set(out) <= {"contents", "generationConfig"}


WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "the weather", "parameters": {"type": "object"}},
}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "weather"}}, {"mode": "ANY", "allowedFunctionNames": ["weather"]}),
    ],
)
def test_tools_and_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    out = tr(tools=[WEATHER], tool_choice=choice)
    decl = {"name": "weather", "description": "the weather", "parametersJsonSchema": {"type": "object"}}
    assert out["tools"] == [{"functionDeclarations": [decl]}]
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_tool_call_round_trip() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    out = to_gemini(
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'},
                {"role": "tool", "tool_call_id": "call_1", "content": "plain text"},
            ]
        }
    )
    assert out["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}],
    }
    assert out["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "weather", "response": {"temp": 3}}},
            {"functionResponse": {"name": "weather", "response": {"content": "plain text"}}},
        ],
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [{"role": "system", "content": "only"}]},
        {"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
        {"messages": [USER], "tools": [{"type": "code_interpreter"}]},
        {"messages": [USER], "tool_choice": "sometimes"},
        {"messages": [USER], "response_format": {"type": "grammar"}},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]},
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ]
        },
    ],
)
def test_untranslatable_requests_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(TranslationError):
        to_gemini(payload)
