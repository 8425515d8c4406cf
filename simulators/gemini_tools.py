"""Function calls from the simulated Gemini, for requests that declare functions (others are answered by
:class:`simulators.gemini_wire.GeminiRender` unchanged).

The model calls a function when ``toolConfig.functionCallingConfig.mode`` is ``ANY``, or (``AUTO``, the default)
when the last turn is the user's text rather than a ``functionResponse``; ``NONE`` never calls. It calls the first
allowed declaration (``allowedFunctionNames``), with arguments filled as the OpenAI flavour fills them
(:func:`simulators.extras.arguments`). The call comes whole, as Gemini sends it: one ``functionCall`` part in the
last frame of a stream (the frames before carry no text), ``finishReason: STOP``; latency and usage are those of
the drawn output.
"""

from __future__ import annotations

from typing import Any

import orjson

from simulators.extras import arguments, pieces
from simulators.gemini_wire import GeminiChunker, field, usage_metadata


def pick_function(payload: dict[str, Any]) -> dict[str, Any] | None:
    decls = [
        f
        for t in payload.get("tools") or ()
        if isinstance(t, dict)
        for f in field(t, "functionDeclarations") or ()
        if isinstance(f, dict) and f.get("name")
    ]
    config = field(field(payload, "toolConfig"), "functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    allowed = field(config, "allowedFunctionNames")
    if allowed:
        decls = [f for f in decls if f["name"] in allowed]
    if not decls or mode == "NONE":
        return None
    contents = payload.get("contents") or []
    last = contents[-1].get("parts") if contents and isinstance(contents[-1], dict) else None
    answered = any(field(p, "functionResponse") is not None for p in last or ())
    return decls[0] if mode == "ANY" or not answered else None


def _args(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}


def _doc(rid: str, model: str, call: dict[str, Any], prompt: int, n: int) -> bytes:
    candidate = {"content": {"parts": [{"functionCall": call}], "role": "model"}, "finishReason": "STOP", "index": 0}
    body = {"candidates": [candidate], "usageMetadata": usage_metadata(prompt, n), "modelVersion": model}
    return orjson.dumps({**body, "responseId": rid})


class GeminiToolRender:
    def __init__(self, stream: bool, sse: bool, function: dict[str, Any]) -> None:
        self.stream, self.sse, self.function = stream, sse, function

    def prepare(self, d: Any) -> None:
        if d.tokens:
            schema = field(self.function, "parametersJsonSchema") or self.function.get("parameters")
            d.tokens = pieces(arguments(schema, d.tokens), len(d.tokens))

    def body(self, rid: str, created: int, model: str, content: str, finish: str, prompt: int, n: int) -> bytes:
        return _doc(rid, model, {"name": self.function["name"], "args": _args(content)}, prompt, n)

    def chunker(self, rid: str, created: int, model: str, prompt: int) -> GeminiToolChunker:
        return GeminiToolChunker(self, GeminiChunker(rid, model, prompt, self.sse), rid, model, prompt)


class GeminiToolChunker:
    """Collects the argument pieces and sends the call whole, with the finish reason, at the end."""

    def __init__(self, render: GeminiToolRender, inner: GeminiChunker, rid: str, model: str, prompt: int) -> None:
        self._r, self._inner = render, inner
        self._rid, self._model, self._prompt = rid, model, prompt
        self._text: list[str] = []

    def role(self) -> bytes:
        return b""

    def token(self, text: str) -> bytes:
        self._text.append(text)
        return b""

    def end(self, reason: str, prompt: int, completion: int) -> bytes:
        call = {"name": self._r.function["name"], "args": _args("".join(self._text))}
        doc = _doc(self._rid, self._model, call, prompt, completion)
        return b"data: " + doc + b"\r\n\r\n" if self._r.sse else b"[" + doc + b"]"

    def error(self, body: dict[str, Any]) -> bytes:
        return self._inner.error(body)
