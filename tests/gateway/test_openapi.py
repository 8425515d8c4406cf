"""``/openapi.json`` is a valid OpenAPI 3.1 document of every public route, and its request schemas accept
exactly what the gateway accepts."""

from __future__ import annotations

from typing import Any

import fakeredis
import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from gateway.app import create_app
from tests.gateway.conftest import DEMO_KEY, make_settings

PUBLIC = {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/health", "/v1/ready"}


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


async def test_the_document_is_valid_and_covers_every_public_route(make_gateway: Any) -> None:
    client = await make_gateway()
    doc = await document(client)
    validate(doc)
    assert set(doc["paths"]) == PUBLIC
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        op = doc["paths"][path]["post"]
        assert {"400", "401", "403", "429", "502", "503"} <= set(op["responses"])
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_every_public_route_the_app_serves_is_documented() -> None:
    app = create_app(make_settings(), state=fakeredis.FakeAsyncRedis())
    assert app.route_table is not None
    served = {p for p in app.route_table.paths if p.startswith("/v1/")}
    assert served == PUBLIC == set(app.openapi()["paths"])


async def test_docs_page_points_at_the_document(make_gateway: Any) -> None:
    resp = await (await make_gateway()).get("/docs")
    assert resp.status_code == 200 and "/openapi.json" in resp.text


def validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator of one component, its ``$ref``s resolved in the document."""
    registry: Registry[Any] = Registry().with_resource("urn:doc", DRAFT202012.create_resource(doc))
    return jsonschema.Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


MSG = [{"role": "user", "content": "hi"}]
CHAT_CASES: list[dict[str, Any]] = [
    {"model": "gpt-4o-mini", "messages": MSG},
    {"model": "gpt-4o-mini", "messages": MSG, "temperature": 1, "top_p": 0.5, "max_tokens": 5, "seed": 3},
    {"model": "gpt-4o-mini", "messages": MSG, "vendor_field": {"x": 1}},
    {"model": "gpt-4o-mini", "messages": MSG, "stop": ["a", "b", "c", "d"]},
    {"model": "gpt-4o-mini", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]},
    {"model": "gpt-4o-mini", "messages": MSG, "temperature": "0.5"},
    {"model": "gpt-4o-mini", "messages": MSG, "temperature": 3},
    {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 0},
    {"model": "gpt-4o-mini", "messages": MSG, "n": True},
    {"model": "gpt-4o-mini", "messages": []},
    {"model": "gpt-4o-mini"},
    {"messages": MSG},
    {"model": "", "messages": MSG},
    {"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
    {"model": "gpt-4o-mini", "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"model": "gpt-4o-mini", "messages": MSG, "logprobs": True, "top_logprobs": 21},
]


@pytest.mark.parametrize("body", CHAT_CASES)
async def test_chat_schema_matches_what_the_gateway_accepts(make_gateway: Any, body: dict[str, Any]) -> None:
    client = await make_gateway()
    doc = await document(client)
    by_schema = validator(doc, "ChatRequest").is_valid(body)
    resp = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert (resp.status_code != 400) == by_schema, resp.text


EMBED_CASES: list[dict[str, Any]] = [
    {"model": "m", "input": "x"},
    {"model": "m", "input": ["x", "y"], "dimensions": 8, "encoding_format": "base64"},
    {"model": "m", "input": [[1, 2], [3]]},
    {"model": "m", "input": "x", "encoding_format": "int8"},
    {"model": "m", "input": "x", "dimensions": 0},
    {"model": "m"},
]


@pytest.mark.parametrize("body", EMBED_CASES)
async def test_embedding_schema_matches_the_validation(make_gateway: Any, body: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from gateway.embeddings_schema import EmbeddingRequest

    doc = await document(await make_gateway())
    try:
        EmbeddingRequest.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert validator(doc, "EmbeddingRequest").is_valid(body) == accepted
