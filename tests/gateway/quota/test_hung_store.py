"""A hung Redis (SIGSTOP) costs a request at most the state store's one bound plus a small margin, under both
failure policies: a real gateway process in front of an instant simulator, a private redis-server paused
mid-traffic and resumed. Every request meets every Redis call the gateway makes: an ``Idempotency-Key``, the
quota (a consumer with limits), the response cache (half the requests are deterministic) or the dollar budget
(the others), and shared breakers. While it is paused requests get the policy's answer (``open``: admitted
unchecked or by the local limiter; ``closed``: 503); once it is resumed, Redis counts again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config import hash_key
from gateway.settings.store import StateSettings
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

KEY = "fl-test-hung-store"
ROOT = Path(__file__).resolve().parents[3]
BOUND = StateSettings().timeout_s  # the shipped default, 0.25 s
MARGIN = 0.15  # the deadline's two graces (2 x 25 ms), and scheduling on a loaded two-core machine


@pytest.fixture
def redis_port() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    yield port, proc
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


def _start(cfg: Path, sim_port: int, port: int, redis_url: str) -> list[Any]:
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    sim = [sys.executable, "-m", "simulators", "--profile", "instant", "--port", str(sim_port)]
    gw = [sys.executable, "-m", "gateway", "--config", str(cfg), "--port", str(port)]
    return [subprocess.Popen(sim, cwd=ROOT, env=env), subprocess.Popen(gw, cwd=ROOT, env=env)]


@pytest.fixture(params=["open", "closed"])
async def gateway(
    request: pytest.FixtureRequest, redis_port: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes], str]]:
    port, sim_port = free_port(), free_port()
    config = {
        "seed": 3,
        "server": {"metrics_port": 0},
        "consumers": [
            {"name": "c", "key_sha256": hash_key(KEY), "limits": {"rpm": 100_000}, "budget": {"usd_per_day": 1e6}}
        ],
        "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "prices": {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}},
        "quota": {"failure_policy": request.param},
        "budget": {"failure_policy": request.param},
        "cache": {"groups": ["gpt-4o-mini"]},
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    procs = _start(cfg, sim_port, port, f"redis://127.0.0.1:{redis_port[0]}/0")
    try:
        await wait_http(f"http://127.0.0.1:{port}/v1/health")
        yield f"http://127.0.0.1:{port}", redis_port[1], request.param
    finally:
        stop(procs)


async def traffic(url: str, until: float, workers: int = 4) -> list[tuple[float, float, int]]:
    """Requests back to back on ``workers`` connections until ``until`` (monotonic): (sent at, seconds, status)."""
    out: list[tuple[float, float, int]] = []
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with aiohttp.ClientSession() as session:

        async def worker(n: int) -> None:
            sent = 0
            while time.monotonic() < until:
                t = time.monotonic()
                sent += 1
                payload = {**body, "temperature": 0} if n % 2 else body  # the cache's path, or the budget's
                headers = {"authorization": f"Bearer {KEY}", "idempotency-key": f"{n}-{sent}"}
                async with session.post(f"{url}/v1/chat/completions", json=payload, headers=headers) as r:
                    await r.read()
                    out.append((t, time.monotonic() - t, r.status))

        await asyncio.gather(*(worker(n) for n in range(workers)))
    return out


async def test_a_paused_redis_costs_a_request_at_most_the_bound(
    gateway: tuple[str, subprocess.Popen[bytes], str],
) -> None:
    url, redis, policy = gateway
    start = time.monotonic()
    load = asyncio.ensure_future(traffic(url, start + 4.0))
    await asyncio.sleep(1.0)  # real traffic against a real process: a second before the pause
    redis.send_signal(signal.SIGSTOP)
    paused = time.monotonic()
    await asyncio.sleep(1.5)
    redis.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    answers = await load

    before = [a for a in answers if a[0] + a[1] < paused]  # answered before the pause
    during = [a for a in answers if a[0] + a[1] >= paused and a[0] < resumed]  # in flight at or sent during it
    after = [a for a in answers if a[0] >= resumed + 1.0]  # the probe interval and one round trip, well past
    assert before and during and after
    assert {s for _, _, s in before} == {200}, "before"
    assert {s for _, _, s in during} <= {200, 503}
    assert (503 in {s for _, _, s in during}) == (policy == "closed")
    assert {s for _, _, s in after} == {200}, "after"
    worst_before = max(d for _, d, _ in before)
    worst = max(d for _, d, _ in during)
    assert worst <= worst_before + BOUND + MARGIN, (worst, worst_before)
