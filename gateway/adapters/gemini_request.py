"""OpenAI chat request -> Gemini ``GenerateContentRequest``: a pure function, table-tested.

* ``system`` / ``developer`` messages -> ``systemInstruction.parts`` (in order); ``user`` -> role ``user``;
  ``assistant`` -> role ``model``; ``tool`` -> a ``functionResponse`` part in a ``user`` turn, named after the
  assistant's tool call it answers. Consecutive turns of one role are merged (Gemini alternates roles).
* Content parts: text -> ``{text}``; ``image_url`` / ``file`` data URLs -> ``inlineData``; other image URLs ->
  ``fileData``; ``input_audio`` -> ``inlineData`` (``audio/wav`` or ``audio/mp3``).
* Assistant ``tool_calls`` -> ``functionCall`` parts (arguments parsed from their JSON string).
* ``temperature``, ``top_p``, ``max_tokens`` / ``max_completion_tokens``, ``stop``, ``seed``, ``n``,
  ``presence_penalty``, ``frequency_penalty``, ``logprobs`` / ``top_logprobs`` -> ``generationConfig``;
  ``response_format`` ``json_object`` -> ``responseMimeType: application/json``, ``json_schema`` -> that plus
  ``responseJsonSchema`` (JSON Schema as given).
* ``tools`` (functions) -> ``functionDeclarations`` with ``parametersJsonSchema``; ``tool_choice`` ``none`` /
  ``auto`` / ``required`` / a named function -> ``toolConfig.functionCallingConfig`` ``NONE`` / ``AUTO`` / ``ANY``
  / ``ANY`` with ``allowedFunctionNames``.
* Dropped (no Gemini equivalent): ``parallel_tool_calls``, ``logit_bias``, ``user``, ``stream_options``,
  ``service_tier``, ``store``, ``metadata`` and any unknown field. Anything that cannot be said to Gemini
  (another tool type, a malformed tool call) raises :class:`TranslationError`, a 400 for the client.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "top_logprobs": "logprobs",
}
_CHOICE = {"none": "NONE", "auto": "AUTO", "required": "ANY"}


class TranslationError(ValueError):
    """The request cannot be expressed in Gemini's API."""


def to_gemini(payload: dict[str, Any]) -> dict[str, Any]:
    system, contents = _contents(payload.get("messages") or [])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(payload)
    if config:
        out["generationConfig"] = config
    tools = payload.get("tools")
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(t) for t in tools]}]
    choice = payload.get("tool_choice")
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": _tool_choice(choice)}
    return out


def _contents(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system += _parts(m.get("content"))
            continue
        if role == "assistant":
            parts = _parts(m.get("content"))
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                names[str(call.get("id"))] = str(fn.get("name"))
                parts.append({"functionCall": {"name": fn.get("name"), "args": _arguments(fn.get("arguments"))}})
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            key = m.get("tool_call_id")
            name = names.get(str(key)) if key is not None else m.get("name")
            if name is None:
                raise TranslationError(f"tool message answers an unknown tool call id {key!r}")
            response = {"name": name, "response": _tool_result(m.get("content"))}
            _append(contents, "user", [{"functionResponse": response}])
        else:
            _append(contents, "user", _parts(m.get("content")))
    if not contents:
        raise TranslationError("messages need at least one user or assistant message besides the system prompt")
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(p) for p in content]


def _part(p: dict[str, Any]) -> dict[str, Any]:
    kind = p.get("type")
    if kind == "text":
        return {"text": p.get("text", "")}
    if kind == "refusal":
        return {"text": p.get("refusal", "")}
    if kind == "image_url":
        url = str((p.get("image_url") or {}).get("url", ""))
        return _media(url, "image/jpeg")
    if kind == "input_audio":
        audio = p.get("input_audio") or {}
        fmt = audio.get("format", "wav")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}}
    if kind == "file":
        data = str((p.get("file") or {}).get("file_data", ""))
        if not data.startswith("data:"):
            raise TranslationError("file parts must carry file_data as a data: URL for this model")
        return _media(data, "application/pdf")
    raise TranslationError(f"content part type {kind!r} is not supported for this model")


def _media(url: str, default_type: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        mime = head.split(";", 1)[0] or default_type
        if not head.endswith(";base64"):
            raise TranslationError("data: URLs must be base64-encoded for this model")
        return {"inlineData": {"mimeType": mime, "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_type
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise TranslationError("tool call arguments must be a JSON object") from None
    if not isinstance(args, dict):
        raise TranslationError("tool call arguments must be a JSON object")
    return args


def _tool_result(content: Any) -> dict[str, Any]:
    text = content if isinstance(content, str) else "".join(str(p.get("text", "")) for p in content or ())
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _generation_config(payload: dict[str, Any]) -> dict[str, Any]:
    config = {g: payload[o] for o, g in _CONFIG.items() if payload.get(o) is not None}
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = payload.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if payload.get("logprobs"):
        config["responseLogprobs"] = True
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if schema is not None:
            config["responseJsonSchema"] = schema
    elif isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise TranslationError(f"response_format type {fmt.get('type')!r} is not supported for this model")
    return config


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise TranslationError("only function tools are supported for this model")
    fn = tool["function"]
    out: dict[str, Any] = {"name": fn.get("name")}
    if fn.get("description"):
        out["description"] = fn["description"]
    if fn.get("parameters") is not None:
        out["parametersJsonSchema"] = fn["parameters"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _CHOICE:
        return {"mode": _CHOICE[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise TranslationError("tool_choice must be none, auto, required or a named function")
