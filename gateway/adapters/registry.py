"""Build one adapter per configured provider."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.adapters.base import OpenAICompatibleAdapter
from gateway.adapters.openai import OpenAIAdapter
from gateway.adapters.vllm import VLLMAdapter
from gateway.config import Provider
from gateway.transport import Transport

_KINDS: dict[str, type[OpenAICompatibleAdapter]] = {"openai": OpenAIAdapter, "vllm": VLLMAdapter}


def build_adapters(
    providers: list[Provider], transport: Transport, env: Mapping[str, str] | None = None
) -> dict[str, OpenAICompatibleAdapter]:
    env = os.environ if env is None else env
    return {
        p.name: _KINDS[p.kind](p.name, p.base_url, transport, env.get(p.api_key_env) if p.api_key_env else None)
        for p in providers
    }
