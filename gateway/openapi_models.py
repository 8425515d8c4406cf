"""Response shapes of the public API, for the OpenAPI document only (replies are built as bytes elsewhere)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ToolCall(_Open):
    id: str
    type: Literal["function"]
    function: dict[str, Any]


class ChatMessage(_Open):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Open):
    index: int
    message: ChatMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None


class ChatCompletion(_Open):
    """``model`` is the name the request asked for; ``id`` is ``chatcmpl-<request id>``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None


class ChunkChoice(_Open):
    index: int
    delta: Delta
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a stream; the stream ends with ``data: [DONE]``, or with a ``data: {"error": …}``
    event when it breaks after bytes were sent. With ``stream_options.include_usage`` a last chunk has
    ``choices: []`` and the ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # a string with encoding_format=base64 (little-endian float32)


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(BaseModel):
    """Every error the gateway answers, whatever failed (OpenAI's shape)."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


class ProviderReadiness(BaseModel):
    kind: str
    state: Literal["closed", "half_open", "open", "unknown"] = Field(description="its breakers' routing state")
    health: Literal["healthy", "unhealthy", "unknown", "unchecked"] = Field(
        description="its active health check: unknown before the first check, unchecked without a health_check"
    )
    checked_at: float | None = Field(default=None, description="epoch seconds of the last check")


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    providers: dict[str, ProviderReadiness]
    state_store: Literal["up", "down"]
