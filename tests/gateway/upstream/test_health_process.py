"""The health check in real processes: a gateway in front of one simulator on loopback reports it healthy in
/v1/ready; once the simulator is stopped the check fails, /v1/ready is 503 (no provider available) and the gauge
reads 0."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]


async def until(c: httpx.AsyncClient, url: str, health: str, attempts: int = 100) -> httpx.Response:
    """Poll /v1/ready until the provider's health reads ``health`` (polling, not a timed assertion)."""
    for _ in range(attempts):
        r = await c.get(url)
        if r.json()["providers"]["openai"]["health"] == health:
            return r
        await asyncio.sleep(0.1)
    raise AssertionError(f"the provider never became {health}")


def _start(cfg: Path, sim_port: int, port: int) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    sim = [sys.executable, "-m", "simulators", "--profile", "instant", "--port", str(sim_port)]
    gw = [sys.executable, "-m", "gateway", "--config", str(cfg), "--port", str(port)]
    return subprocess.Popen(sim, cwd=ROOT, env=env), subprocess.Popen(gw, cwd=ROOT, env=env)


async def test_a_stopped_upstream_turns_unhealthy_and_the_replica_unready(tmp_path: Path) -> None:
    port, sim_port, metrics_port = free_port(), free_port(), free_port()
    config: dict[str, Any] = {
        "seed": 3,
        "server": {"metrics_port": metrics_port},
        "providers": [
            {
                "name": "openai",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "health_check": {"interval_s": 0.2, "timeout_s": 0.5, "unhealthy_after": 1},
            }
        ],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    sim, gw = _start(cfg, sim_port, port)
    try:
        await wait_http(f"http://127.0.0.1:{port}/v1/health")
        url = f"http://127.0.0.1:{port}/v1/ready"
        async with httpx.AsyncClient() as c:
            healthy = await until(c, url, "healthy")
            assert healthy.status_code == 200
            stop([sim])
            unhealthy = await until(c, url, "unhealthy")
            assert unhealthy.status_code == 503 and unhealthy.json()["status"] == "unavailable"
            assert unhealthy.json()["providers"]["openai"]["state"] == "closed"  # no request failed: breaker closed
            metrics = (await c.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert 'faultline_provider_healthy{provider="openai"} 0.0' in metrics
    finally:
        stop([gw, sim])
