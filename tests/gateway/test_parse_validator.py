"""The request schemas validated through their validators directly: the same models and the same errors as
``model_validate``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway.embeddings_schema import EmbeddingRequest, parse_embedding_request
from gateway.errors import InvalidRequest
from gateway.schemas import ChatRequest, invalid_request, parse_chat_request

CHATS: list[Any] = [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
    {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    {"model": "m", "messages": []},
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "eight"},
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "unknown": 1},
    {"messages": [{"role": "user", "content": "hi"}]},
]
EMBEDDINGS: list[Any] = [{"model": "e", "input": "hi"}, {"model": "e", "input": 3}, {"input": "hi"}]


def _expected(model: Any, payload: Any) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = invalid_request(exc)
        return (err.message, err.param, err.code)


def _got(parse: Any, payload: Any) -> Any:
    try:
        body, forwarded = parse(orjson.dumps(payload))
    except InvalidRequest as err:
        return (err.message, err.param, err.code)
    assert forwarded == payload
    return body


@pytest.mark.parametrize("payload", CHATS)
def test_a_chat_body_validates_as_model_validate_does(payload: Any) -> None:
    assert _got(parse_chat_request, payload) == _expected(ChatRequest, payload)


@pytest.mark.parametrize("payload", EMBEDDINGS)
def test_an_embeddings_body_validates_as_model_validate_does(payload: Any) -> None:
    assert _got(parse_embedding_request, payload) == _expected(EmbeddingRequest, payload)
