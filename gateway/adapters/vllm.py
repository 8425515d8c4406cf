"""vLLM's OpenAI-compatible server.

Differences from OpenAI that matter here: the error body (``code`` is the HTTP status as an integer; older
releases send a flat ``{"object": "error", ...}``, both handled by the shared classifier), a queue-full 429 that is
a rate limit, never a quota, and ``/health`` for liveness.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.adapters.base import OpenAICompatibleAdapter, retry_after
from gateway.adapters.upstreamerrors import UpstreamError, UpstreamRateLimited


class VLLMAdapter(OpenAICompatibleAdapter):
    kind = "vllm"

    def classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> UpstreamError:
        if status == 429:  # vLLM has no billing: a 429 is always its queue or a rate limiter in front of it
            return UpstreamRateLimited(self.name, "vLLM is at capacity", retry_after=retry_after(headers))
        return super().classify(status, headers, raw)
