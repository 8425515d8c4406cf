"""OpenAI embeddings <-> Gemini ``batchEmbedContents``: pure functions, table-tested.

Request: each input string -> ``{"model": "models/<m>", "content": {"parts": [{"text"}]}}``, with
``dimensions`` -> ``outputDimensionality``. Token arrays cannot be sent (Gemini embeds text only): a 400.
Response: ``embeddings[i].values`` -> ``data[i].embedding`` (``encoding_format: base64`` is encoded here, as
little-endian float32, which is what OpenAI sends). Gemini reports no token usage for embeddings: ``usage`` is
the gateway's estimate, ``ceil(characters / 4)`` per input, the same rule as the quota's estimate.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from typing import Any

from gateway.adapters.gemini_request import TranslationError


def texts(payload: Mapping[str, Any]) -> list[str]:
    raw = payload.get("input")
    items = [raw] if isinstance(raw, str) else list(raw or ())
    if not items or not all(isinstance(x, str) for x in items):
        raise TranslationError("this model embeds text only: send input as a string or a list of strings")
    return items


def to_batch(payload: Mapping[str, Any], model: str) -> dict[str, Any]:
    dims = payload.get("dimensions")
    requests = []
    for text in texts(payload):
        r: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dims is not None:
            r["outputDimensionality"] = dims
        requests.append(r)
    return {"requests": requests}


def encode(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def estimate_tokens(inputs: list[str]) -> int:
    return sum(max(1, math.ceil(len(t) / 4)) for t in inputs)


def from_batch(doc: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The OpenAI embeddings list, or None when ``doc`` is not a batchEmbedContents answer for this input."""
    inputs = texts(payload)
    embeddings = doc.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != len(inputs):
        return None
    b64 = payload.get("encoding_format") == "base64"
    data = []
    for i, e in enumerate(embeddings):
        values = e.get("values") if isinstance(e, dict) else None
        if not isinstance(values, list):
            return None
        data.append({"object": "embedding", "index": i, "embedding": encode(values) if b64 else values})
    tokens = estimate_tokens(inputs)
    return {
        "object": "list",
        "data": data,
        "model": str(payload.get("model") or ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
