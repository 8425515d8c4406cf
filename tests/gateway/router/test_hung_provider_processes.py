"""A hung provider, in real processes: a gateway (``python -m gateway``) in front of an OpenAI-like simulator process
that starts hanging (connections accepted, nothing answered) and a healthy vLLM-like one. The first-byte timeout and
the request deadline are far longer than the test's own client timeout, so without slow-call breaking and hedging
every request routed to the hung provider would outlive the client. With them, every request is answered by the
healthy provider: a hedge sent after the hung route's time-to-first-byte p95 wins, and the hung attempt is
cancelled. (Slow-call breaking is on too; a hung attempt cancelled by a hedge before ``slow_call_s`` gives its
breaker no verdict, docs/OPERATIONS.md.)

Bounded: 20 warm-up and 30 measured requests, five at a time; every wait polls a bounded number of times;
processes are always stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import hash_key
from tests.processes import free_port, gateway_behind_simulators, wait_http

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-hung-provider"
CLIENT_TIMEOUT_S = 60.0  # the test's bound; the gateway's own timeouts below are longer
HANG = {"base": "instant", "timeline": [{"type": "outage", "start_s": 0, "end_s": 36_000, "mode": "hang"}]}


def gateway_config(ports: dict[str, int]) -> dict[str, Any]:
    return {
        "seed": 5,
        "server": {"host": "127.0.0.1", "port": ports["http"], "metrics_port": ports["metrics"]},
        "consumers": [{"name": "app", "key_sha256": hash_key(KEY), "permissions": ["chat", "served_by"]}],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{ports['openai']}/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": f"http://127.0.0.1:{ports['vllm']}/v1"},
        ],
        "models": [
            {
                "name": "chat",
                "routes": [
                    {"provider": "openai", "model": "gpt-4o-mini", "weight": 3},
                    {"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "weight": 1},
                ],
            }
        ],
        "router": {
            "timeouts": {"first_byte_s": 600, "request_deadline_s": 900},
            "breaker": {"slow_call_s": 0.5, "slow_call_rate": 0.5, "consecutive_slow_calls": 3},
            "hedging": {"enabled": True, "min_samples": 5},
        },
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("openai", "vllm", "http", "metrics")}
    sims = {flavour: ports[flavour] for flavour in ("openai", "vllm")}
    with gateway_behind_simulators(tmp_path, gateway_config(ports), sims):
        yield ports


async def served_by(client: openai.AsyncOpenAI, n: int) -> list[str]:
    """``n`` non-streaming and streaming requests, five at a time; the provider that answered each."""
    gate = asyncio.Semaphore(5)

    async def one(i: int) -> str:
        async with gate:
            messages: Any = [{"role": "user", "content": f"hello {i}"}]
            if i % 2:
                raw = await client.chat.completions.with_raw_response.create(
                    model="chat", messages=messages, max_tokens=8
                )
                raw.parse()
                return str(raw.headers.get("x-faultline-served-by")).split("/")[0]
            async with client.chat.completions.with_streaming_response.create(
                model="chat", messages=messages, max_tokens=8, stream=True
            ) as stream:
                async for _ in stream.iter_lines():
                    pass
                return str(stream.headers.get("x-faultline-served-by")).split("/")[0]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def counters(text: str, family: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[tuple(sorted(s.labels.values()))] = s.value
    return out


async def test_a_hung_provider_costs_no_request_its_first_byte_timeout(stack: dict[str, int]) -> None:
    for flavour in ("openai", "vllm"):
        await wait_http(f"http://127.0.0.1:{stack[flavour]}/_sim/profile")
    await wait_http(f"http://127.0.0.1:{stack['http']}/v1/health")
    base = f"http://127.0.0.1:{stack['http']}/v1"
    client = openai.AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S)
    warm = await served_by(client, 20)  # both routes gather time-to-first-byte samples
    assert "openai" in warm
    async with httpx.AsyncClient() as control:
        sim = f"http://127.0.0.1:{stack['openai']}/_sim/profile"
        assert (await control.post(sim, json={"profile": HANG})).status_code == 200
        hung = await served_by(client, 30)  # an exception here (a timeout) is the failure this test guards
        metrics = (await control.get(f"http://127.0.0.1:{stack['metrics']}/metrics")).text
    await client.close()
    assert set(hung) == {"vllm"}, hung
    hedges = counters(metrics, "faultline_hedges")
    assert sum(v for k, v in hedges.items() if "won" in k) >= 1, hedges
