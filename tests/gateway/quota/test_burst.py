"""Exact quotas under a burst with the shipped defaults: two real gateway processes (``python -m gateway``, no
tuned timeouts) on a real Redis, 1,000 requests at once over 200 connections against an RPM of 100, with the
machine's other core kept busy by a spinning process. A slow event loop must not be taken for a dead Redis: the
burst admits exactly 100, and neither replica declares an outage (metrics: store up, no false outage).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from gateway.config import hash_key
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

KEY = "fl-test-burst-rpm"
ROOT = Path(__file__).resolve().parents[3]
SPIN = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end:\n    pass\n"
SLOW = {
    "description": "every answer waits 3 s for its first token",
    "source": "none",
    "model": "sim-slow",
    "latency": {"time-to-first-token": 3000},
    "output": {"output-tokens": 4},
}


def _start(profile: Path, sim_port: int, gateways: dict[int, Path], redis_url: str) -> list[Any]:
    """The simulator, then one ``python -m gateway`` per (port, configuration)."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    sim = [sys.executable, "-m", "simulators", "--profile", str(profile), "--port", str(sim_port)]
    procs = [subprocess.Popen(sim, cwd=ROOT, env=env)]
    for port, cfg in gateways.items():
        cmd = [sys.executable, "-m", "gateway", "--config", str(cfg), "--port", str(port)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))
    return procs


@pytest.fixture
async def replicas(redis_server_url: str, tmp_path: Path, key_prefix: str) -> AsyncIterator[list[tuple[str, str]]]:
    """Two replicas: (API URL, metrics URL) each."""
    prefix = key_prefix.replace("[", "-").replace("]", "-") + f":{os.getpid()}"
    profile = tmp_path / "slow.yaml"
    profile.write_text(yaml.safe_dump(SLOW))
    sim_port, ports, metrics = free_port(), [free_port(), free_port()], [free_port(), free_port()]
    gateways: dict[int, Path] = {}
    for port, metrics_port in zip(ports, metrics, strict=True):
        config = {
            "seed": 5,
            "server": {"metrics_port": metrics_port},
            "consumers": [{"name": "burst", "key_sha256": hash_key(KEY), "limits": {"rpm": 100}}],
            "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
            "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
            "quota": {"key_prefix": prefix, "replicas": 2},  # every state-store setting at its default
        }
        cfg = tmp_path / f"gateway-{port}.yaml"
        cfg.write_text(yaml.safe_dump(config))
        gateways[port] = cfg
    procs = _start(profile, sim_port, gateways, redis_server_url)
    store = aioredis.Redis.from_url(redis_server_url)
    try:
        for p in ports:
            await wait_http(f"http://127.0.0.1:{p}/v1/health")
        yield [(f"http://127.0.0.1:{p}", f"http://127.0.0.1:{m}/metrics") for p, m in zip(ports, metrics, strict=True)]
    finally:
        stop(procs)
        async for key in store.scan_iter(match=f"{prefix}:*"):
            await store.delete(key)
        await store.aclose()


@pytest.fixture
def busy_core() -> Iterator[None]:
    """A process spinning on the CPU for the test's duration (at most 90 s)."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    yield
    proc.kill()
    proc.wait(timeout=10)


async def burst(urls: list[str], n: int, connections: int) -> list[tuple[int, dict[str, str]]]:
    """``n`` requests over ``connections`` connections, as fast as they go: (status, headers) each."""
    out: list[tuple[int, dict[str, str]]] = []
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker(w: int) -> None:
            for i in range(w, n, connections):
                url = f"{urls[i % len(urls)]}/v1/chat/completions"
                async with session.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}) as r:
                    await r.read()
                    out.append((r.status, dict(r.headers)))

        await asyncio.gather(*(worker(w) for w in range(connections)))
    return out


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_a_burst_is_exact_with_the_default_settings(replicas: list[tuple[str, str]], busy_core: None) -> None:
    answers = await burst([api for api, _ in replicas], 1000, 200)
    assert Counter(status for status, _ in answers) == {200: 100, 429: 900}
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for status, h in answers if status == 200)
    assert remaining == list(range(100))
    async with httpx.AsyncClient() as client:
        for _, metrics_url in replicas:
            text = (await client.get(metrics_url)).text
            assert metric(text, "faultline_state_store_up") == 1.0
            assert metric(text, "faultline_state_store_false_outages_total") == 0.0
            assert metric(text, 'faultline_quota_decisions_total{backend="local",kind="ok"}') == 0.0
