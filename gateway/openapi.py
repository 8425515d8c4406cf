"""The OpenAPI 3.1 document of the public API (``GET /openapi.json``, shown by ``GET /docs``).

Built from the same pydantic models that validate requests (gateway/schemas.py, gateway/embeddings_schema.py),
so the document cannot drift from what the gateway accepts; response shapes come from gateway/openapi_models.py.
The operator API (``/admin/*``) is left out on purpose: it is documented in docs/ROUTING.md and docs/KEYS.md and
is not for API clients.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.openapi.docs import get_swagger_ui_html
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import openapi_models as m
from gateway.call import Call, Reply
from gateway.embeddings_schema import EmbeddingRequest
from gateway.schemas import ChatRequest

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "invalid request (the field is named in `param`), or a model of the other kind",
    "401": "missing or wrong API key",
    "403": "the key lacks the permission, may not use the model (`model_not_allowed`), or spent its daily budget",
    "404": "unknown model",
    "413": "body over the size limit",
    "415": "not application/json",
    "429": "the key's rate limit (headers `retry-after`, `x-ratelimit-*`)",
    "502": "the upstream failed and no other provider could answer",
    "503": "overloaded or no provider available (`retry-after`)",
    "504": "the request deadline passed",
}
_MODELS: list[type[BaseModel]] = [
    ChatRequest,
    EmbeddingRequest,
    m.ChatCompletion,
    m.ChatCompletionChunk,
    m.EmbeddingList,
    m.ModelList,
    m.Error,
    m.Health,
    m.Ready,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: {"description": _ERRORS[c], "content": _json(m.Error)} for c in codes}


_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_ALL = ("400", "401", "403", "404", "413", "415", "429", "502", "503", "504")


def build_openapi(title: str, version: str) -> dict[str, Any]:
    _, defs = models_json_schema([(x, "validation") for x in _MODELS], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "An OpenAI-compatible inference gateway."},
        "paths": {**_inference_paths(), **_service_paths()},
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def _inference_paths() -> dict[str, Any]:
    """The calls that reach a provider: chat completions and embeddings."""
    chat = {
        "post": {
            "summary": "Create a chat completion",
            "operationId": "createChatCompletion",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": _json(ChatRequest)},
            "responses": {
                "200": {
                    "description": "a completion, or with `stream: true` server-sent events of chunks",
                    "content": {
                        **_json(m.ChatCompletion),
                        "text/event-stream": {"schema": _ref(m.ChatCompletionChunk)},
                    },
                },
                **_errors(*_ALL),
            },
        }
    }
    embeddings = {
        "post": {
            "summary": "Create embeddings",
            "operationId": "createEmbedding",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": _json(EmbeddingRequest)},
            "responses": {"200": {"description": "the vectors", "content": _json(m.EmbeddingList)}, **_errors(*_ALL)},
        }
    }
    return {"/v1/chat/completions": chat, "/v1/embeddings": embeddings}


def _service_paths() -> dict[str, Any]:
    """The gateway's own answers: the models a key may use, liveness, readiness."""
    models = {
        "get": {
            "summary": "List the models this key may use",
            "operationId": "listModels",
            "security": _SECURITY,
            "responses": {
                "200": {"description": "model cards", "content": _json(m.ModelList)},
                **_errors("401", "403"),
            },
        }
    }
    health = {
        "get": {
            "summary": "Liveness",
            "operationId": "health",
            "responses": {"200": {"description": "alive", "content": _json(m.Health)}},
        }
    }
    ready = {
        "get": {
            "summary": "Readiness: each provider's routing state",
            "operationId": "ready",
            "responses": {
                "200": {
                    "description": "some provider is available: its breakers not all open, its health check not "
                    "failing",
                    "content": _json(m.Ready),
                },
                "503": {"description": "no provider is available", "content": _json(m.Ready)},
            },
        }
    }
    return {"/v1/models": models, "/v1/health": health, "/v1/ready": ready}


class ApiDocs:
    """``GET /openapi.json`` (the document, built on first use) and ``GET /docs`` (Swagger UI, which loads its
    script and styles from a CDN in the browser)."""

    def __init__(self, title: str, version: str) -> None:
        self._title = title
        self._version = version
        self._doc: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = build_openapi(self._title, self._version)
        return self._doc

    async def serve_document(self, call: Call) -> Reply:
        return Reply(body=orjson.dumps(self.document()))

    async def serve_page(self, call: Call) -> Reply:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{self._title} - Swagger UI")
        return Reply(body=bytes(page.body), media_type="text/html; charset=utf-8")
