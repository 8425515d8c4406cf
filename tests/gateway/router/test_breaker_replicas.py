"""Breaker sharing across replicas: two real uvicorn gateway processes, one real Redis, one simulator process.

Replica A opens the breaker on its own failures; replica B, which never saw a failure, refuses the next request
without calling the upstream. After the cool-off A's probes close the breaker and B adopts ``closed`` from the
state store (it would otherwise still be half-open: it needs three probes of its own). No request reaches the
upstream between the breaker opening and the first probe.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from gateway.config import hash_key
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

KEY, ADMIN = "fl-test-breaker-user", "fl-test-breaker-admin"
ROOT = Path(__file__).resolve().parents[3]
BREAKER = "openai/gpt-4o-mini"
COOLOFF_S = 3.0  # long enough for B to be asked inside it on a busy machine; the test waits it out by polling
PROBES = 3


def _start_processes(redis_url: str, profile: Path, sim_port: int, cfg: Path, ports: list[int]) -> list[Any]:
    """The simulator (with its control API) and one gateway process per port; plain Popen, before any await."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "GATEWAY_CONFIG": str(cfg)}
    sim = [sys.executable, "-m", "simulators", "--profile", str(profile), "--port", str(sim_port), "--control"]
    procs = [subprocess.Popen(sim, cwd=ROOT, env=env)]
    app = "tests.gateway.router.replica_app:build"
    for p in ports:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", app, "--port", str(p), "--log-level", "error"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))
    return procs


@dataclass
class Cluster:
    a: str
    b: str
    sim: str


@pytest.fixture
async def cluster(redis_server_url: str, tmp_path: Path, key_prefix: str) -> AsyncIterator[Cluster]:
    prefix = key_prefix.replace("[", "-").replace("]", "-") + f":{os.getpid()}"
    profile = tmp_path / "down.yaml"
    profile.write_text(
        yaml.safe_dump(
            {"description": "every request gets 503", "base": "instant", "timeline": [{"type": "outage", "start_s": 0}]}
        )
    )
    sim_port, ports = free_port(), [free_port(), free_port()]
    config = {
        "seed": 5,
        "server": {"metrics_port": 0},
        "admin_key_sha256": hash_key(ADMIN),
        "consumers": [{"name": "app", "key_sha256": hash_key(KEY)}],
        "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "quota": {"key_prefix": prefix},
        "router": {
            "retry": {"max_attempts": 1},
            "breaker": {
                "consecutive_failures": 3,
                "min_calls": 100,
                "cooloff_s": COOLOFF_S,
                "half_open_probes": PROBES,
                "cache_s": 0.1,
            },
        },
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    procs = _start_processes(redis_server_url, profile, sim_port, cfg, ports)
    store = aioredis.Redis.from_url(redis_server_url)
    try:
        urls = [f"http://127.0.0.1:{p}" for p in (sim_port, *ports)]
        await wait_http(f"{urls[0]}/_sim/profile")  # /health is 503 in an outage
        for u in urls[1:]:
            await wait_http(f"{u}/v1/health")
        yield Cluster(a=urls[1], b=urls[2], sim=urls[0])
    finally:
        stop(procs)
        async for key in store.scan_iter(match=f"{prefix}:*"):
            await store.delete(key)
        await store.aclose()


async def _chat(c: httpx.AsyncClient, url: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return await c.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})


async def _breaker(c: httpx.AsyncClient, url: str) -> Any:
    r = await c.get(f"{url}/admin/router", headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200
    return r.json()["breakers"].get(BREAKER)


async def _upstream_calls(c: httpx.AsyncClient, sim: str) -> int:
    return len((await c.get(f"{sim}/_sim/decisions")).json()["decisions"])


def _refused_by_breaker(r: httpx.Response) -> bool:
    return r.status_code == 503 and "circuit breakers open" in r.json()["error"]["message"]


async def test_a_breaker_opened_by_one_replica_opens_and_closes_on_the_other(cluster: Cluster) -> None:
    """Asserted on the order of what happens and on counts of upstream calls, not on how long anything took:
    the machine may be slow, and a cool-off is real time."""
    async with httpx.AsyncClient(timeout=30.0) as c:
        for _ in range(3):  # three consecutive failures on A
            assert (await _chat(c, cluster.a)).status_code == 503
        assert await _upstream_calls(c, cluster.sim) == 3

        r = await _chat(c, cluster.b)  # B's first request reads the shared state
        calls_after_b = await _upstream_calls(c, cluster.sim)
        b_state = await _breaker(c, cluster.b)
        # A still refusing afterwards means all of the above happened inside the cool-off A's failures started
        assert _refused_by_breaker(await _chat(c, cluster.a)), "the cool-off was over before B was asked"
        assert _refused_by_breaker(r) and int(r.headers["retry-after"]) >= 1  # B refused too ...
        assert calls_after_b == 3  # ... without calling the upstream
        assert b_state == "open"

        r = await c.post(f"{cluster.sim}/_sim/profile", json={"profile": "instant"})
        assert r.status_code == 200
        refused = 0
        while _refused_by_breaker(r := await _chat(c, cluster.a)):  # until the cool-off ends: the first probe
            refused += 1
            assert refused < 1000, "the breaker never let a probe through"
            await asyncio.sleep(0.05)  # polling real processes
        assert r.status_code == 200
        for _ in range(PROBES - 1):
            assert (await _chat(c, cluster.a)).status_code == 200
        assert await _upstream_calls(c, cluster.sim) == 3 + PROBES  # nothing reached it before the first probe
        assert await _breaker(c, cluster.a) == "closed"

        await asyncio.sleep(0.2)  # longer than cache_s: B's next request reads the store again
        assert (await _chat(c, cluster.b)).status_code == 200
        assert await _breaker(c, cluster.b) == "closed"  # adopted; one probe of its own would leave it half_open
