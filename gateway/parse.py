"""Stage: read the body within its size limit, check its type, validate it, resolve the model."""

from __future__ import annotations

from gateway.call import Call, Handler, Reply
from gateway.catalog import ModelCatalog
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.schemas import parse_chat_request


class ParseStage:
    def __init__(self, catalog: ModelCatalog, max_body_bytes: int) -> None:
        self._catalog = catalog
        self._max = max_body_bytes

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        ctype = call.headers.get("content-type")
        if ctype is not None and ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise UnsupportedMediaType(f"Content-Type must be application/json, got '{ctype[:64]}'.")
        length = call.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max:
            raise PayloadTooLarge(f"The request body is larger than the limit of {self._max} bytes.")
        raw = await call.receive_body()
        if len(raw) > self._max:
            raise PayloadTooLarge(f"The request body is larger than the limit of {self._max} bytes.")
        if not raw:
            raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
        body, payload = parse_chat_request(raw)
        call.body, call.payload = body, payload
        call.record.model = body.model
        call.record.stream = bool(body.stream)
        self._catalog.resolve_for(body.model, call.consumer)
        return await next_(call)
