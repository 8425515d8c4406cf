"""OpenAI: the reference API. The key comes from the environment variable the provider config names."""

from __future__ import annotations

from gateway.adapters.base import OpenAICompatibleAdapter


class OpenAIAdapter(OpenAICompatibleAdapter):
    kind = "openai"
