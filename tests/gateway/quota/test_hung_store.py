"""A hung Redis (SIGSTOP) does not hold requests until it comes back, under both failure policies: a real gateway
process in front of an instant simulator, a private redis-server paused mid-traffic and resumed. Every request
meets every Redis call the gateway makes: an ``Idempotency-Key``, the quota (a consumer with limits), the response
cache (half the requests are deterministic) or the dollar budget (the others), and shared breakers. While it is
paused requests get the policy's answer (``open``: admitted unchecked or by the local limiter; ``closed``: 503),
and requests sent after the pause began are answered before it ends; once it is resumed, Redis counts again.
Asserted on the order of sends, answers, pause and resume, not on durations (the bound of one call,
``state.timeout_s``, is tested in virtual time: tests/gateway/store/test_storedeadline.py).
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
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

KEY = "fl-test-hung-store"
ROOT = Path(__file__).resolve().parents[3]


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


async def traffic(url: str, out: list[tuple[float, float, int]], stop: asyncio.Event, workers: int = 4) -> None:
    """Requests back to back on ``workers`` connections until ``stop``: (sent at, seconds, status) into ``out``."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with aiohttp.ClientSession() as session:

        async def worker(n: int) -> None:
            sent = 0
            while not stop.is_set():
                t = time.monotonic()
                sent += 1
                payload = {**body, "temperature": 0} if n % 2 else body  # the cache's path, or the budget's
                headers = {"authorization": f"Bearer {KEY}", "idempotency-key": f"{n}-{sent}"}
                async with session.post(f"{url}/v1/chat/completions", json=payload, headers=headers) as r:
                    await r.read()
                    out.append((t, time.monotonic() - t, r.status))

        await asyncio.gather(*(worker(n) for n in range(workers)))


async def store_back(url: str) -> float:
    """When (monotonic) the gateway first reports its state store up again on /v1/ready."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            async with session.get(f"{url}/v1/ready") as r:
                if (await r.json())["state_store"] == "up":
                    return time.monotonic()
            await asyncio.sleep(0.05)  # polling a real process
    raise AssertionError("the gateway never reported the state store up again")


async def test_a_paused_redis_does_not_hold_requests_until_it_is_back(
    gateway: tuple[str, subprocess.Popen[bytes], str],
) -> None:
    url, redis, policy = gateway
    answers: list[tuple[float, float, int]] = []
    stop = asyncio.Event()
    load = asyncio.ensure_future(traffic(url, answers, stop))
    await asyncio.sleep(1.0)  # real traffic against a real process: a while before the pause
    redis.send_signal(signal.SIGSTOP)
    paused = time.monotonic()
    await asyncio.sleep(1.5)
    redis.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    recovered = await store_back(url)
    for _ in range(600):  # until some requests were sent and answered after the gateway saw the store back
        if sum(1 for a in answers if a[0] >= recovered) >= 8:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await load

    before = [a for a in answers if a[0] + a[1] < paused]  # answered before the pause
    during = [a for a in answers if a[0] + a[1] >= paused and a[0] < resumed]  # in flight at or sent during it
    after = [a for a in answers if a[0] >= recovered]  # sent once the gateway had the store back
    assert before and during and after
    assert {s for _, _, s in before} == {200}, "before"
    assert {s for _, _, s in during} <= {200, 503}
    assert (503 in {s for _, _, s in during}) == (policy == "closed")
    assert {s for _, _, s in after} == {200}, "after"
    answered_while_paused = [a for a in during if a[0] >= paused and a[0] + a[1] < resumed]
    assert answered_while_paused, "no request sent during the pause was answered before Redis came back"
