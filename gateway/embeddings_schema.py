"""The embeddings request, validated like the chat request: strict types, a 400 naming the field, unknown
top-level fields forwarded to OpenAI-compatible upstreams untouched."""

from __future__ import annotations

from typing import ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import InvalidRequest
from gateway.schemas import invalid_request

MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = Field(default=None, max_length=256)

    operation: ClassVar[str] = "embeddings"

    @field_validator("input")
    @classmethod
    def _input(cls, v: str | list[str] | list[int] | list[list[int]]) -> str | list[str] | list[int] | list[list[int]]:
        if isinstance(v, str):
            if not v:
                raise ValueError("must not be empty")
            return v
        if not v:
            raise ValueError("must not be an empty array")
        if len(v) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs")
        for item in v:
            if (isinstance(item, str | list)) and not item:
                raise ValueError("must not contain empty strings or empty token arrays")
        return v

    @property
    def stream(self) -> bool:
        return False

    @property
    def include_usage(self) -> bool:
        return False

    def texts(self) -> list[str] | None:
        """The inputs as strings, or None when they are token arrays."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(x, str) for x in self.input):
            return [x for x in self.input if isinstance(x, str)]
        return None


# ``model_validate`` is a Python wrapper that reads the validator through the model class's ``__getattr__`` hook
# and passes six keywords, all at their defaults: the validator's own method, called with the object alone, is
# the same validation.
_VALIDATE = EmbeddingRequest.__pydantic_validator__.validate_python


def parse_embedding_request(raw: bytes) -> tuple[EmbeddingRequest, dict[str, object]]:
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
