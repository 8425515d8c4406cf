"""Error responses as OpenAI and vLLM send them, and the transport-level faults.

OpenAI: ``{"error": {"message", "type", "param", "code"}}`` with a string ``code``.
vLLM:   ``{"error": {"message", "type": "BadRequestError", "param": null, "code": 400}}`` (``code`` = status);
        401 is vLLM's bare ``{"error": "Unauthorized"}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Flavour = Literal["openai", "vllm", "gemini"]


class SimulatedConnectionReset(ConnectionResetError):
    """Raised from the ASGI app where a real upstream would drop the connection."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What the decision core knows about a failure; rendered per flavour by :func:`render_error`."""

    kind: str
    model: str = ""
    limit_kind: Literal["requests", "tokens"] = "requests"
    limit: int = 0
    used: int = 0
    requested: int = 0
    retry_after: float = 0.0  # seconds
    prompt_tokens: int = 0
    max_tokens: int = 0  # 0: the request set none (the prompt alone is too long)
    max_model_len: int = 0
    organization: str = "org-faultline-sim"
    detail: str = ""


STATUS = {
    "rate_limit": 429,
    "insufficient_quota": 429,
    "queue_full": 429,
    "invalid_api_key": 401,
    "context_length": 400,
    "invalid_request": 400,
    "model_not_found": 404,
    "server_error": 500,
    "overloaded": 503,
    "not_found": 404,
    "method_not_allowed": 405,
}

_VLLM_TYPE = {
    400: "BadRequestError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` string as OpenAI's x-ratelimit-reset-* headers use it: ``120ms``, ``1s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    total = round(seconds, 3)
    hours, rem = divmod(total, 3600)
    minutes, secs = divmod(rem, 60)
    s = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{s}"
    if minutes:
        return f"{int(minutes)}m{s}"
    return s


def _openai(info: ErrorInfo) -> tuple[str, str | None, str | None]:
    """(message, type, code) for the OpenAI flavour."""
    k = info.kind
    if k == "rate_limit":
        unit = "requests per min (RPM)" if info.limit_kind == "requests" else "tokens per min (TPM)"
        msg = (
            f"Rate limit reached for {info.model} in organization {info.organization} on {unit}: "
            f"Limit {info.limit}, Used {info.used}, Requested {info.requested}. "
            f"Please try again in {go_duration(info.retry_after)}. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        return msg, info.limit_kind, "rate_limit_exceeded"
    if k == "insufficient_quota":
        msg = (
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
        return msg, "insufficient_quota", "insufficient_quota"
    if k == "queue_full":
        return "That model is currently overloaded with other requests.", "requests", "rate_limit_exceeded"
    if k == "invalid_api_key":
        msg = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
        return msg, "invalid_request_error", "invalid_api_key"
    if k == "context_length" and not info.max_tokens:
        msg = (
            f"This model's maximum context length is {info.max_model_len} tokens. However, your messages resulted "
            f"in {info.prompt_tokens} tokens. Please reduce the length of the messages."
        )
        return msg, "invalid_request_error", "context_length_exceeded"
    if k == "context_length":
        total = info.prompt_tokens + info.max_tokens
        msg = (
            f"This model's maximum context length is {info.max_model_len} tokens. However, you requested "
            f"{total} tokens ({info.prompt_tokens} in the messages, {info.max_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        )
        return msg, "invalid_request_error", "context_length_exceeded"
    if k == "model_not_found":
        msg = f"The model `{info.model}` does not exist or you do not have access to it."
        return msg, "invalid_request_error", "model_not_found"
    if k == "overloaded":
        msg = (
            "That model is currently overloaded with other requests. You can retry your request, or contact us "
            "through our help center at help.openai.com if the error persists."
        )
        return msg, "server_error", None
    if k == "server_error":
        msg = (
            "The server had an error while processing your request. Sorry about that! You can retry your "
            "request, or contact us through our help center at help.openai.com if the error persists."
        )
        return msg, "server_error", None
    return info.detail or "Invalid request.", "invalid_request_error", None


def _vllm_message(info: ErrorInfo) -> str:
    k = info.kind
    if k == "context_length" and not info.max_tokens:
        return (
            f"This model's maximum context length is {info.max_model_len} tokens. However, your request has "
            f"{info.prompt_tokens} input tokens. Please reduce the length of the input messages."
        )
    if k == "context_length":
        return (
            f"'max_tokens' or 'max_completion_tokens' is too large: {info.max_tokens}. This model's maximum "
            f"context length is {info.max_model_len} tokens and your request has {info.prompt_tokens} input "
            f"tokens ({info.max_tokens} > {info.max_model_len} - {info.prompt_tokens})."
        )
    if k == "model_not_found":
        return f"The model `{info.model}` does not exist."
    if k in ("rate_limit", "queue_full"):
        return "The waiting queue is full; the server cannot accept more requests. Please try again later."
    if k == "insufficient_quota":
        return "Quota exhausted for this deployment."
    if k == "overloaded":
        return "The engine is not available (EngineDeadError); the server is overloaded or restarting."
    if k == "server_error":
        return "Internal server error (EngineCore encountered an issue)."
    return info.detail or "Invalid request."


def render_error(flavour: Flavour, info: ErrorInfo) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for ``info`` as the given flavour sends it."""
    status = STATUS.get(info.kind, 400)
    if flavour == "openai":
        msg, typ, code = _openai(info)
        param = "messages" if info.kind == "context_length" else None
        return status, {"error": {"message": msg, "type": typ, "param": param, "code": code}}
    if info.kind == "invalid_api_key":
        return 401, {"error": "Unauthorized"}
    typ = _VLLM_TYPE.get(status, "BadRequestError")
    return status, {"error": {"message": _vllm_message(info), "type": typ, "param": None, "code": status}}


def retry_after_header(seconds: float) -> bytes:
    """``retry-after`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))).encode()
