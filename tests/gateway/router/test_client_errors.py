"""Nothing of an upstream's error text reaches a client: each error type the simulators answer with, through the
whole gateway, for both OpenAI-like and vLLM-like upstreams; the client gets the gateway's own words."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import DEMO_KEY, GatewayFactory

UPSTREAM_WORDS = (
    "does not exist",
    "help.openai.com",
    "platform.openai.com",
    "EngineCore",
    "EngineDeadError",
    "waiting queue",
    "Quota exhausted for this deployment",
    "Incorrect API key",
    "However, you requested",
    "input tokens",
    "Llama",
)
EXPECTED = {  # failure type -> (status, code)
    "context_length": (400, "context_length_exceeded"),
    "invalid_request": (400, "upstream_rejected"),
    "model_not_found": (502, "upstream_error"),
    "invalid_api_key": (502, "upstream_error"),
    "server_error": (502, "upstream_error"),
    "overloaded": (503, "service_unavailable"),
    "rate_limit": (503, "service_unavailable"),
    "insufficient_quota": (503, "service_unavailable"),
}


def failing(kind: str) -> dict[str, Any]:
    phase = {"type": "degradation", "start_s": 0, "end_s": 3600, "failure-injection-rate": 1.0}
    return {"max-model-len": 4096, "timeline": [{**phase, "failure-types": [kind]}]}


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_the_client_gets_the_gateways_own_words(make_gateway: GatewayFactory, flavour: str, kind: str) -> None:
    profiles = {f"{flavour}_profile": failing(kind)}
    client = await make_gateway(**profiles)
    model = "gpt-4o-mini" if flavour == "openai" else "llama"
    reply = await client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {DEMO_KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    )
    err = reply.json()["error"]
    assert (reply.status_code, err["code"]) == EXPECTED[kind], err
    assert not [w for w in UPSTREAM_WORDS if w in err["message"]], err["message"]
    if kind == "context_length":
        assert "4096 tokens" in err["message"]  # the one number taken from the upstream: its context window
        assert err["param"] == "messages"
