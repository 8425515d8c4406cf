"""Gemini's wire format for the simulated Gemini: request parsing, bodies, SSE frames, errors.

Routes (under ``/v1beta`` and ``/v1``, the version google-genai 3 calls by default):
``POST models/{model}:generateContent``, ``POST models/{model}:streamGenerateContent``
(``?alt=sse``: one ``data:`` frame per ``GenerateContentResponse`` and no ``[DONE]``; without it a JSON array),
``POST models/{model}:embedContent``, ``POST models/{model}:batchEmbedContents``, ``GET models`` and
``GET models/{model}``. The key comes in ``x-goog-api-key`` (or ``?key=``).

Error body: ``{"error": {"code": <HTTP status>, "message", "status": <google.rpc code name>, "details"?}}``.
A 429 is always ``RESOURCE_EXHAUSTED``: a per-minute limit names its quota in a ``google.rpc.QuotaFailure``
detail and the wait in a ``google.rpc.RetryInfo`` (``"retryDelay": "12s"``); an exhausted daily quota names a
``PerDay`` quota and carries no RetryInfo; a saturated model answers the bare "Resource has been exhausted".
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from simulators.failures import STATUS, ErrorInfo
from simulators.sampling import count_prompt_tokens

PREFIXES = ("/v1beta/", "/v1/")
_METHODS = "generateContent|streamGenerateContent|embedContent|batchEmbedContents"
_ROUTE = re.compile(rf"^/v1(?:beta)?/models/([^/:]+):({_METHODS})$")
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
_RETRY = "type.googleapis.com/google.rpc.RetryInfo"
_HELP = "https://ai.google.dev/gemini-api/docs/rate-limits"


def field(doc: Any, name: str) -> Any:
    """``doc[name]`` by its lowerCamelCase name or its proto field name (``maxOutputTokens`` or
    ``max_output_tokens``): Gemini's JSON parser takes both, and google-genai sends some fields snake_case."""
    if not isinstance(doc, dict):
        return None
    value = doc.get(name)
    return value if value is not None else doc.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name))


def route(path: str) -> tuple[str, str] | None:
    """``(model, method)`` of a model-method path, else None."""
    m = _ROUTE.match(path)
    return (m.group(1), m.group(2)) if m else None


def api_key(scope: dict[str, Any] | Any) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"x-goog-api-key":
            return str(v.decode("latin-1"))
    keys = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key")
    return keys[0] if keys else None


def wants_sse(scope: dict[str, Any] | Any) -> bool:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("alt") == ["sse"]


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(t for p in parts if isinstance(p, dict) and isinstance(t := p.get("text"), str))


def parse_generate(payload: Any) -> tuple[list[dict[str, Any]] | None, int | None, str]:
    """``(messages, max_output_tokens, problem)``: the contents as chat messages (for token counting)."""
    if not isinstance(payload, dict):
        return None, None, "Invalid JSON payload received. The body must be a JSON object."
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        return None, None, "* GenerateContentRequest.contents: contents is not specified"
    messages: list[dict[str, Any]] = []
    system = field(payload, "systemInstruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text(system.get("parts"))})
    for i, c in enumerate(contents):
        if not isinstance(c, dict) or not isinstance(c.get("parts"), list) or not c["parts"]:
            return None, None, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        role = c.get("role", "user")
        if role not in ("user", "model", "function"):
            return None, None, f'Please use a valid role: user, model. (got "{role}")'
        messages.append({"role": "user" if role == "user" else "assistant", "content": _text(c["parts"])})
    config = field(payload, "generationConfig") or {}
    if not isinstance(config, dict):
        return None, None, "Invalid JSON payload received. generationConfig must be an object."
    limit = field(config, "maxOutputTokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        return None, None, "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    return messages, limit, ""


def prompt_tokens(messages: list[dict[str, Any]]) -> tuple[int, str]:
    return count_prompt_tokens(messages)


def usage_metadata(prompt: int, completion: int | None) -> dict[str, Any]:
    u: dict[str, Any] = {"promptTokenCount": prompt}
    if completion is not None:
        u["candidatesTokenCount"] = completion
    u["totalTokenCount"] = prompt + (completion or 0)
    u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return u


def response(rid: str, model: str, text: str, finish: str, prompt: int, completion: int) -> bytes:
    """A whole ``GenerateContentResponse``."""
    candidate = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "finishReason": _FINISH.get(finish, "OTHER"),
        "index": 0,
    }
    body = {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(prompt, completion),
        "modelVersion": model,
        "responseId": rid,
    }
    return orjson.dumps(body)


def blocked(model: str, prompt: int) -> bytes:
    """The answer to a prompt the safety filter blocked: no candidates, ``promptFeedback.blockReason``."""
    ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
    feedback = {"blockReason": "SAFETY", "safetyRatings": ratings}
    return orjson.dumps(
        {"promptFeedback": feedback, "usageMetadata": usage_metadata(prompt, None), "modelVersion": model}
    )


class GeminiChunker:
    """Frames of ``streamGenerateContent``: every frame a whole ``GenerateContentResponse`` whose candidate holds
    the new text; the last carries ``finishReason`` and the full ``usageMetadata``. SSE frames end with the last
    one (no ``[DONE]``); the JSON-array form is ``[`` frames joined by ``,\\r\\n`` ``]``.

    Same methods as :class:`simulators.wire.Chunker` so the app streams either."""

    __slots__ = ("_first", "_head", "_mid", "_model", "_prompt", "_rid", "_sse")

    def __init__(self, rid: str, model: str, prompt: int, sse: bool) -> None:
        self._rid, self._model, self._prompt, self._sse = rid, model, prompt, sse
        self._first = True
        self._head = b'{"candidates":[{"content":{"parts":[{"text":'
        tail = {"usageMetadata": usage_metadata(prompt, None), "modelVersion": model, "responseId": rid}
        self._mid = b'}],"role":"model"},"index":0}],' + orjson.dumps(tail)[1:]

    def _frame(self, doc: bytes) -> bytes:
        if self._sse:
            return b"data: " + doc + b"\r\n\r\n"
        lead = b"[" if self._first else b",\r\n"
        self._first = False
        return lead + doc

    def role(self) -> bytes:
        return b""  # Gemini sends no role-only frame: the first frame carries the first text

    def token(self, text: str) -> bytes:
        return self._frame(self._head + orjson.dumps(text) + self._mid)

    def end(self, finish: str, prompt: int, completion: int) -> bytes:
        candidate = {
            "content": {"parts": [{"text": ""}], "role": "model"},
            "finishReason": _FINISH.get(finish, "OTHER"),
            "index": 0,
        }
        doc = {
            "candidates": [candidate],
            "usageMetadata": usage_metadata(prompt, completion),
            "modelVersion": self._model,
            "responseId": self._rid,
        }
        return self._frame(orjson.dumps(doc)) + (b"" if self._sse else b"]")

    def error(self, body: dict[str, Any]) -> bytes:
        return self._frame(orjson.dumps(body)) + (b"" if self._sse else b"]")


_STATUS_NAME = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _quota_detail(info: ErrorInfo, daily: bool) -> dict[str, Any]:
    if daily:
        metric, quota = "generate_content_requests", "GenerateRequestsPerDayPerProjectPerModel"
    elif info.limit_kind == "tokens":
        metric, quota = "generate_content_input_token_count", "GenerateContentInputTokensPerModelPerMinute"
    else:
        metric, quota = "generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"
    violation = {
        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
        "quotaId": quota,
        "quotaDimensions": {"location": "global", "model": info.model},
    }
    if info.limit:
        violation["quotaValue"] = str(info.limit)
    return {"@type": _QUOTA, "violations": [violation]}


def _message(info: ErrorInfo) -> tuple[int, str, list[dict[str, Any]]]:
    k = info.kind
    if k in ("rate_limit", "insufficient_quota"):
        daily = k == "insufficient_quota"
        msg = (
            "You exceeded your current quota, please check your plan and billing details. For more information "
            f"on this error, head to: {_HELP}."
        )
        details = [_quota_detail(info, daily)]
        if not daily:
            details.append({"@type": _RETRY, "retryDelay": f"{max(1, math.ceil(info.retry_after))}s"})
        return 429, msg, details
    if k == "queue_full":
        return 429, "Resource has been exhausted (e.g. check quota).", []
    if k == "invalid_api_key":
        detail = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return 400, "API key not valid. Please pass a valid API key.", [detail]
    if k == "context_length":
        total = info.prompt_tokens
        return (
            400,
            (f"The input token count ({total}) exceeds the maximum number of tokens allowed ({info.max_model_len})."),
            [],
        )
    if k == "model_not_found":
        return (
            404,
            (
                f"models/{info.model} is not found for API version v1beta, or is not supported for generateContent. "
                "Call ListModels to see the list of available models and their supported methods."
            ),
            [],
        )
    if k == "overloaded":
        return 503, "The model is overloaded. Please try again later.", []
    if k == "server_error":
        msg = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        return 500, msg, []
    if k == "not_found":
        return 404, info.detail or "Method not found.", []
    return STATUS.get(k, 400), info.detail or "Request contains an invalid argument.", []


def render_error(info: ErrorInfo) -> tuple[int, dict[str, Any]]:
    status, msg, details = _message(info)
    err: dict[str, Any] = {"code": status, "message": msg, "status": _STATUS_NAME.get(status, "UNKNOWN")}
    if details:
        err["details"] = details
    return status, {"error": err}


def models(model_ids: list[str], max_model_len: int) -> bytes:
    return orjson.dumps({"models": [model_card(m, max_model_len) for m in model_ids]})


def model_card(model: str, max_model_len: int) -> dict[str, Any]:
    embedding = "embedding" in model
    methods = ["embedContent", "batchEmbedContents"] if embedding else ["generateContent", "countTokens"]
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "inputTokenLimit": max_model_len,
        "outputTokenLimit": 1 if embedding else 8192,
        "supportedGenerationMethods": methods,
    }


def embed_texts(payload: Any, batch: bool, model: str) -> tuple[list[tuple[str, int | None]] | None, str]:
    """``[(text, output_dimensionality)]`` of an embedContent / batchEmbedContents body, or a problem."""
    if not isinstance(payload, dict):
        return None, "Invalid JSON payload received. The body must be a JSON object."
    reqs = payload.get("requests") if batch else [payload]
    if not isinstance(reqs, list) or not reqs:
        return None, "* BatchEmbedContentsRequest.requests: requests is not specified"
    out: list[tuple[str, int | None]] = []
    for r in reqs:
        content = r.get("content") if isinstance(r, dict) else None
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            return None, "* EmbedContentRequest.content: content is not specified"
        if batch and r.get("model") not in (None, f"models/{model}"):
            return None, f"Model in request {r.get('model')!r} does not match models/{model}."
        dim = field(r, "outputDimensionality")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
            return None, "* EmbedContentRequest.output_dimensionality: must be positive"
        out.append((_text(content["parts"]), dim))
    return out, ""


class GeminiRender:
    """How one generation goes out in Gemini's shape (see :class:`simulators.wire.OpenAIRender`)."""

    __slots__ = ("sse", "stream")

    def __init__(self, stream: bool, sse: bool) -> None:
        self.stream, self.sse = stream, sse

    def body(self, rid: str, created: int, model: str, content: str, finish: str, prompt: int, n: int) -> bytes:
        return response(rid, model, content, finish, prompt, n)

    def chunker(self, rid: str, created: int, model: str, prompt: int) -> GeminiChunker:
        return GeminiChunker(rid, model, prompt, self.sse)

    def prepare(self, d: Any) -> None:
        """Function calls are not simulated for Gemini: text only."""


def embeddings(vectors: list[list[float]], batch: bool) -> bytes:
    if batch:
        return orjson.dumps({"embeddings": [{"values": v} for v in vectors]})
    return orjson.dumps({"embedding": {"values": vectors[0]}})
