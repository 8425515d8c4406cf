"""Build one adapter per configured provider."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.adapters.base import OpenAICompatibleAdapter
from gateway.adapters.gemini import GeminiAdapter
from gateway.adapters.openai import OpenAIAdapter
from gateway.adapters.vllm import VLLMAdapter
from gateway.clock import Clock, SystemClock
from gateway.config import Provider
from gateway.transport import Transport

_KINDS: dict[str, type[OpenAICompatibleAdapter]] = {"openai": OpenAIAdapter, "vllm": VLLMAdapter}


def build_adapters(
    providers: list[Provider],
    transport: Transport,
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock | None = None,
) -> dict[str, OpenAICompatibleAdapter]:
    """``clock`` stamps the ``created`` of replies an adapter builds itself (Gemini's)."""
    env = os.environ if env is None else env
    clock = clock or SystemClock()
    out: dict[str, OpenAICompatibleAdapter] = {}
    for p in providers:
        key = env.get(p.api_key_env) if p.api_key_env else None
        if p.kind == "gemini":
            out[p.name] = GeminiAdapter(p.name, p.base_url, transport, key, clock=clock)
        else:
            out[p.name] = _KINDS[p.kind](p.name, p.base_url, transport, key)
    return out
