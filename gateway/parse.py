"""Stage: check the body's type, read it (the edge's reader holds it to the size limit: gateway/asgi.py),
validate it, resolve the model group (once: the router takes ``call.group``).

One stage per endpoint: chat completions (``kind="chat"``) and embeddings (``kind="embedding"``). A model group
serves one kind; asking an endpoint for a model of the other kind is a 400 ``wrong_model_kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from gateway.call import Call, Handler, Reply
from gateway.catalog import ModelCatalog
from gateway.embeddings_schema import EmbeddingRequest, parse_embedding_request
from gateway.errors import InvalidRequest, UnsupportedMediaType
from gateway.schemas import ChatRequest, parse_chat_request

Parser = Callable[[bytes], tuple[ChatRequest | EmbeddingRequest, dict[str, Any]]]
_ENDPOINT = {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings"}


class ParseStage:
    def __init__(self, catalog: ModelCatalog, kind: Literal["chat", "embedding"] = "chat") -> None:
        self._catalog = catalog
        self._kind = kind
        self._parse: Parser = parse_chat_request if kind == "chat" else parse_embedding_request

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        ctype = call.headers.get("content-type")
        if ctype is not None and ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise UnsupportedMediaType(f"Content-Type must be application/json, got '{ctype[:64]}'.")
        raw = await call.receive_body()
        if not raw:
            raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
        body, payload = self._parse(raw)
        call.body, call.payload = body, payload
        call.record.model = body.model
        call.record.stream = bool(body.stream)
        call.group = group = self._catalog.resolve_for(body.model, call.consumer)
        if group.kind != self._kind:
            raise InvalidRequest(
                f"The model '{body.model}' is a {group.kind} model; send it to {_ENDPOINT[group.kind]}.",
                param="model",
                code="wrong_model_kind",
            )
        return await next_(call)
