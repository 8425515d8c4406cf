"""The chat completions request, validated.

Validation is strict (no string-to-number coercion) and every failure becomes a 400 whose ``param`` names the
field in OpenAI's notation (``messages[0].role``). Unknown top-level fields are forwarded untouched, as the
upstream may know them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import InvalidRequest

MAX_TOKENS_CAP = 1_048_576


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class OtherPart(_Strict):
    type: Literal["input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | ImagePart | OtherPart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _content_rules(self) -> Message:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"content is required for role '{self.role}'")
        if self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=4096)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = Field(default=None, max_length=256)
    seed: int | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None

    operation: ClassVar[str] = "chat"

    @model_validator(mode="after")
    def _stream_options(self) -> ChatRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


# ``model_validate`` is a Python wrapper that reads the validator through the model class's ``__getattr__`` hook
# and passes six keywords, all at their defaults: the validator's own method, called with the object alone, is
# the same validation.
_VALIDATE = ChatRequest.__pydantic_validator__.validate_python


def parse_chat_request(raw: bytes) -> tuple[ChatRequest, dict[str, Any]]:
    """Decode and validate a request body; returns the model and the JSON object to forward."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {exc.msg}. The body must be a UTF-8 JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return _VALIDATE(payload), payload
    except ValidationError as exc:
        raise invalid_request(exc) from None


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """The first validation error as a 400 whose ``param`` names the field in OpenAI's notation."""
    err = exc.errors(include_url=False)[0]
    loc = [x for x in err["loc"] if not (isinstance(x, str) and _is_union_tag(x))]
    param = _param(loc)
    what = err["msg"]
    if err["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if err["type"] == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param)
    return InvalidRequest(f"Invalid value for '{param or 'body'}': {what}.", param=param or None, code="invalid_value")


def _is_union_tag(part: str) -> bool:
    return part in {"str", "list[...]", "text", "image_url", "input_audio", "file", "refusal"} or "[" in part


def _param(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
