"""Nothing of an upstream's error text reaches a client, in real processes: a gateway (``python -m gateway``) in front
of an OpenAI-like and a vLLM-like simulator process, each switched to one failure type at a time through its
control endpoint; the client is the official openai SDK. Every failure type the simulators answer with gives the
gateway's own status, code and words (the same table as the in-process test).

Bounded: 16 requests, every wait polls a bounded number of times, processes are always stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.config import hash_key
from tests.gateway.router.test_client_errors import EXPECTED, UPSTREAM_WORDS, failing
from tests.processes import free_port, gateway_behind_simulators, wait_http

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-client-errors"
MODELS = {"openai": "gpt-4o-mini", "vllm": "llama"}


def gateway_config(ports: dict[str, int]) -> dict[str, Any]:
    return {
        "seed": 3,
        "server": {"host": "127.0.0.1", "port": ports["http"], "metrics_port": ports["metrics"]},
        "consumers": [{"name": "app", "key_sha256": hash_key(KEY), "permissions": ["chat"]}],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{ports['openai']}/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": f"http://127.0.0.1:{ports['vllm']}/v1"},
        ],
        "models": [
            {"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            {"name": "llama", "routes": [{"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct"}]},
        ],
        # One attempt per request and no breaker opening: each failure type is answered on its own.
        "router": {
            "retry": {"max_attempts": 1},
            "breaker": {"min_calls": 1000, "consecutive_failures": 0},
        },
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("openai", "vllm", "http", "metrics")}
    sims = {flavour: ports[flavour] for flavour in MODELS}
    with gateway_behind_simulators(tmp_path, gateway_config(ports), sims):
        yield ports


async def test_no_upstream_words_reach_the_sdk(stack: dict[str, int]) -> None:
    for flavour in MODELS:
        await wait_http(f"http://127.0.0.1:{stack[flavour]}/_sim/profile")
    await wait_http(f"http://127.0.0.1:{stack['http']}/v1/health")
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{stack['http']}/v1", api_key=KEY, max_retries=0)
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    async with httpx.AsyncClient() as control:
        for flavour, model in MODELS.items():
            # insufficient_quota last: it rightly takes the provider out of rotation (router.breaker.quota_cooloff_s)
            for kind in sorted(EXPECTED, key=lambda k: (k == "insufficient_quota", k)):
                profile = {"base": "instant", **failing(kind)}
                sim = f"http://127.0.0.1:{stack[flavour]}/_sim/profile"
                assert (await control.post(sim, json={"profile": profile})).status_code == 200
                with pytest.raises(openai.APIStatusError) as caught:
                    await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=5
                    )
                body = caught.value.body
                assert isinstance(body, dict), body
                message = str(body["message"])
                assert not [w for w in UPSTREAM_WORDS if w in message], (flavour, kind, message)
                assert caught.value.response.headers.get("x-request-id")
                seen[flavour, kind] = (caught.value.status_code, str(body["code"]))
                if kind == "context_length":
                    assert "4096 tokens" in message
    await client.close()
    assert seen == {(flavour, kind): EXPECTED[kind] for flavour in MODELS for kind in EXPECTED}
