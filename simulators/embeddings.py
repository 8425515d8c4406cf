"""Deterministic embeddings: the vector of a text is a pure function of (seed, model, text).

Components are seeded Gaussian draws, normalised to unit length; a requested dimension keeps the first
``dimensions`` components and normalises again (as models trained for shortened embeddings are used).
Equal inputs give equal vectors, so cosine similarity of a text with itself is 1 and repeat runs match.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson

from gateway.rng import Rng


def vector(seed: int | str, model: str, text: str, full: int, dimensions: int | None = None) -> list[float]:
    rng = Rng(f"{seed}/embed/{model}/{text}")
    values = [rng.gauss(0.0, 1.0) for _ in range(full)]
    if dimensions is not None:
        values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


def tokens(text: str) -> int:
    """Approximate tokens of one input, 4 characters a token (at least 1)."""
    return max(1, (len(text) + 3) // 4)


def openai_inputs(payload: Any) -> tuple[list[tuple[str, int]] | None, str]:
    """``[(seeding text, token count)]`` for ``input`` as a string, strings, a token array or token arrays."""
    raw = payload.get("input") if isinstance(payload, dict) else None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return None, "'input' must be a non-empty string, array of strings, or array of token arrays"
    if all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        raw = [raw]
    out: list[tuple[str, int]] = []
    for item in raw:
        if isinstance(item, str) and item:
            out.append((item, tokens(item)))
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            out.append((" ".join(map(str, item)), len(item)))
        else:
            return None, "'input' must not contain empty strings, empty arrays or non-integer tokens"
    return out, ""


def openai_body(model: str, vectors: list[list[float]], prompt_tokens: int, encoding: str) -> bytes:
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v) if encoding == "base64" else v}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def encode(values: list[float]) -> str:
    """OpenAI's base64 form: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
