"""Gemini responses and errors -> OpenAI's shapes: pure functions, table-tested.

* ``candidates`` -> ``choices`` (``index`` kept); text parts joined (``thought`` parts left out);
  ``functionCall`` parts -> ``tool_calls`` (``id`` from the part, else ``call_<responseId>_<choice>_<n>``, the
  arguments as a JSON string).
* ``finishReason``: STOP -> ``stop`` (``tool_calls`` when the candidate called a function), MAX_TOKENS ->
  ``length``, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY -> ``content_filter``,
  anything else (LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, …) -> ``stop``.
* A prompt blocked before generation (``promptFeedback.blockReason``, no candidates) is one empty choice with
  ``finish_reason: content_filter``.
* ``usageMetadata`` -> ``usage``: prompt = ``promptTokenCount``, completion = ``candidatesTokenCount`` +
  ``thoughtsTokenCount`` (both are billed as output), ``cached_tokens`` and ``reasoning_tokens`` in the details.
* Streams: :class:`StreamTranslator` turns each ``GenerateContentResponse`` frame into one chunk (the first
  carries ``role``) and keeps the latest usage for one ``choices: []`` usage chunk at the end.
* Errors (``{"error": {"code", "message", "status", "details"}}``) -> the adapter exception tree: see
  :func:`classify`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamServerError,
)

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def finish_reason(gemini: str | None, called: bool) -> str | None:
    if gemini is None or gemini == "FINISH_REASON_UNSPECIFIED":
        return None
    if gemini == "MAX_TOKENS":
        return "length"
    if gemini in _FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def usage(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(meta.get("totalTokenCount") or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _split(candidate: Mapping[str, Any], rid: str, first_call: int) -> tuple[str | None, list[dict[str, Any]]]:
    """The candidate's text (None when it has no text part) and its function calls as OpenAI tool calls."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    index = int(candidate.get("index") or 0)
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            fc = part["functionCall"]
            n = first_call + len(calls)
            calls.append(
                {
                    "id": fc.get("id") or f"call_{rid}_{index}_{n}",
                    "type": "function",
                    "function": {"name": fc.get("name", ""), "arguments": orjson.dumps(fc.get("args") or {}).decode()},
                }
            )
    return ("".join(texts) if texts else None), calls


def to_completion(body: Mapping[str, Any], *, model: str, created: int) -> dict[str, Any]:
    """A whole ``GenerateContentResponse`` as an OpenAI chat completion."""
    rid = str(body.get("responseId") or "gemini")
    choices: list[dict[str, Any]] = []
    for cand in body.get("candidates") or ():
        text, calls = _split(cand, rid, 0)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        reason = finish_reason(cand.get("finishReason"), bool(calls)) or "stop"
        choices.append(
            {"index": int(cand.get("index") or 0), "message": message, "logprobs": None, "finish_reason": reason}
        )
    if not choices:  # the prompt was blocked (promptFeedback.blockReason)
        message = {"role": "assistant", "content": None, "refusal": None}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"})
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(body.get("usageMetadata")) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class StreamTranslator:
    """Frame by frame: each Gemini frame -> one OpenAI chunk; :meth:`finish` -> the usage chunk."""

    def __init__(self, *, model: str, created: int) -> None:
        self._model, self._created = model, created
        self._id: str | None = None
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls sent so far
        self._usage: dict[str, Any] | None = None
        self.finished = False  # a finish reason (or a blocked prompt) has been seen

    def _head(self, rid: str) -> dict[str, Any]:
        if self._id is None:
            self._id = f"chatcmpl-{rid}"
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}

    def frame(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        rid = str(doc.get("responseId") or "gemini")
        self._usage = usage(doc.get("usageMetadata")) or self._usage
        choices: list[dict[str, Any]] = []
        for cand in doc.get("candidates") or ():
            index = int(cand.get("index") or 0)
            sent = self._calls.get(index, 0)
            text, calls = _split(cand, rid, sent)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
            if text is not None or not calls:
                delta["content"] = text or ""
            if calls:
                delta["tool_calls"] = [{"index": sent + i, **c} for i, c in enumerate(calls)]
                self._calls[index] = sent + len(calls)
            reason = finish_reason(cand.get("finishReason"), self._calls.get(index, 0) > 0)
            self.finished = self.finished or reason is not None
            choices.append({"index": index, "delta": delta, "logprobs": None, "finish_reason": reason})
        if not choices and (doc.get("promptFeedback") or {}).get("blockReason"):
            self.finished = True
            choices.append({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                            "finish_reason": "content_filter"})  # fmt: skip
        if not choices:
            return None
        return {**self._head(rid), "choices": choices}

    def finish(self) -> dict[str, Any] | None:
        """The usage chunk (``choices: []``), once the stream has ended; None without usage."""
        if self._usage is None:
            return None
        return {**self._head("gemini"), "choices": [], "usage": self._usage}


def _retry_delay(details: list[Any]) -> float | None:
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DELAY.match(str(d.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    return None


def _daily(details: list[Any]) -> bool:
    quotas = [
        str(v.get("quotaId", ""))
        for d in details
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for v in d.get("violations") or ()
        if isinstance(v, dict)
    ]
    return any("PerDay" in q for q in quotas)


def _reason(details: list[Any]) -> str | None:
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return str(d.get("reason"))
    return None


def error_fields(raw: bytes) -> tuple[str, str, list[Any]]:
    """``(message, status, details)`` of a Gemini error body (a JSON array of one error is accepted too)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace"), "", []
    if isinstance(doc, list) and doc:
        doc = doc[0]
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return "", "", []
    details = err.get("details")
    return str(err.get("message") or ""), str(err.get("status") or ""), details if isinstance(details, list) else []


def classify(provider: str, status: int, raw: bytes) -> UpstreamError:
    """429 RESOURCE_EXHAUSTED: a rate limit (its RetryInfo delay as ``retry_after``), or, naming a per-day quota
    without a RetryInfo, an exhausted quota that retrying does not help; 5xx (INTERNAL, UNAVAILABLE,
    DEADLINE_EXCEEDED): a server error; a 400 ``API_KEY_INVALID`` and 401/403 (UNAUTHENTICATED,
    PERMISSION_DENIED): a refusal of the gateway's credentials (401/403, not the client's fault); other 4xx
    (INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND): the request refused."""
    message, code, details = error_fields(raw)
    message = message or f"HTTP {status}"
    if status == 429:
        delay = _retry_delay(details)
        if delay is None and _daily(details):
            return UpstreamQuotaExhausted(provider, message, status=429)
        return UpstreamRateLimited(provider, message, retry_after=delay)
    if status >= 500:
        return UpstreamServerError(provider, message, status=status)
    if status == 400 and _reason(details) == "API_KEY_INVALID":
        return UpstreamClientError(provider, message, status=401, body=raw)
    return UpstreamClientError(provider, f"{code}: {message}" if code else message, status=status, body=raw)
