"""Exactness across replicas: two real uvicorn gateway processes sharing one real Redis.

The upstream (a simulator process) holds every answer for seconds, so all checks of a burst happen before the
first reconcile; the assertions are then exact: N admitted, and each remaining count seen exactly once.
1,000 concurrent requests against an RPM of 100; 400 against a TPM of 50 reservations and, at the same time, 100
against a daily budget of 20 reservations (smaller bursts: the same exactness at less machine time).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from gateway.config import hash_key
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

RPM_KEY, TOK_KEY, DAY_KEY = "fl-test-replica-rpm", "fl-test-replica-tok", "fl-test-replica-day"
MESSAGES = [{"role": "user", "content": "hi"}]  # estimate: 3 + 4 + 1 prompt, + max_tokens
MAX_TOKENS = 10
ESTIMATE = 3 + 4 + 1 + MAX_TOKENS
ROOT = Path(__file__).resolve().parents[3]


def _start_processes(redis_url: str, profile: Path, sim_port: int, cfg: Path, ports: list[int]) -> list[Any]:
    """One simulator and one gateway process per port; plain Popen, started before the test awaits anything."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    sim = [sys.executable, "-m", "simulators", "--profile", str(profile), "--port", str(sim_port)]
    procs = [subprocess.Popen(sim, cwd=ROOT, env=env)]
    app = "tests.gateway.quota.replica_app:build"
    for p in ports:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", app, "--port", str(p), "--log-level", "warning"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env={**env, "GATEWAY_CONFIG": str(cfg)}))
    return procs


@pytest.fixture
async def replicas(redis_server_url: str, tmp_path: Path, key_prefix: str) -> AsyncIterator[list[str]]:
    prefix = key_prefix.replace("[", "-").replace("]", "-") + f":{os.getpid()}"
    profile = tmp_path / "slow.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "description": "every answer waits 5 s for its first token",
                "source": "none",
                "model": "sim-slow",
                "latency": {"time-to-first-token": 5000},
                "output": {"output-tokens": 4},
            }
        )
    )
    sim_port = free_port()
    config = {
        "seed": 5,
        "server": {"metrics_port": 0},
        "consumers": [
            {"name": "rpm", "key_sha256": hash_key(RPM_KEY), "limits": {"rpm": 100}},
            {"name": "tok", "key_sha256": hash_key(TOK_KEY), "limits": {"tpm": 50 * ESTIMATE}},
            {"name": "day", "key_sha256": hash_key(DAY_KEY), "limits": {"tpd": 20 * ESTIMATE}},
        ],
        "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "quota": {"key_prefix": prefix, "replicas": 2},
        "state": {"timeout_s": 5.0},  # exactness across replicas; the defaults under a burst: test_burst.py
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    ports = [free_port(), free_port()]
    procs = _start_processes(redis_server_url, profile, sim_port, cfg, ports)
    store = aioredis.Redis.from_url(redis_server_url)
    try:
        for p in ports:
            await wait_http(f"http://127.0.0.1:{p}/v1/health")
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        stop(procs)
        async for key in store.scan_iter(match=f"{prefix}:*"):
            await store.delete(key)
        await store.aclose()


async def _burst(urls: list[str], key: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

        async def one(i: int) -> httpx.Response:
            return await client.post(
                f"{urls[i % len(urls)]}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS},
            )

        return await asyncio.gather(*(one(i) for i in range(n)))


def _statuses(responses: list[httpx.Response]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in responses:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


async def test_rpm_tpm_and_daily_limits_are_exact_across_two_replicas(replicas: list[str]) -> None:
    responses = await _burst(replicas, RPM_KEY, 1000)
    assert _statuses(responses) == {200: 100, 429: 900}
    ok = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(100))
    assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"100"}
    rejected: Any = [r for r in responses if r.status_code == 429]
    assert {r.headers["x-ratelimit-remaining-requests"] for r in rejected} == {"0"}
    assert {r.json()["error"]["type"] for r in rejected} == {"requests"}
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in rejected)

    responses, daily = await asyncio.gather(_burst(replicas, TOK_KEY, 400), _burst(replicas, DAY_KEY, 100))
    assert _statuses(daily) == {200: 20, 403: 80}
    spent: Any = [r for r in daily if r.status_code == 403]
    assert {r.json()["error"]["code"] for r in spent} == {"insufficient_quota"}
    assert {r.headers["x-should-retry"] for r in spent} == {"false"}
    assert all(f"Limit {20 * ESTIMATE}, Used {20 * ESTIMATE}" in r.json()["error"]["message"] for r in spent)

    assert _statuses(responses) == {200: 50, 429: 350}
    ok = [r for r in responses if r.status_code == 200]
    remaining = sorted(int(r.headers["x-ratelimit-remaining-tokens"]) for r in ok)
    assert remaining == [k * ESTIMATE for k in range(50)]
    rejected = [r for r in responses if r.status_code == 429]
    assert {r.json()["error"]["type"] for r in rejected} == {"tokens"}
