"""A real gateway process with two uvicorn workers (``python -m gateway --workers 2``) in front of a simulator
process: metrics in multi-process mode aggregate both workers on the one metrics port, a live scrape passes
``promtool check metrics``, and the request log written by both workers loses nothing on a graceful shutdown.

Bounded: requests are sent in small batches until both workers have served some (at most 40 batches), every wait
has a timeout, and the processes are always stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import hash_key
from gateway.observability.requestlog import read_records
from tests.processes import free_port, stop, wait_http

from .conftest import promtool

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-workers-test"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = {"sim": free_port(), "http": free_port(), "metrics": free_port()}
    config = {
        "seed": 3,
        "server": {"host": "127.0.0.1", "port": ports["http"], "metrics_port": ports["metrics"]},
        "consumers": [{"name": "alice", "key_sha256": hash_key(KEY)}],
        "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{ports['sim']}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "observability": {"request_log_path": str(tmp_path / "requests.jsonl"), "run_id": "two-workers"},
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FAULTLINE_REQUEST_LOG", "FAULTLINE_RUN_ID")}
    env.update({"PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)})
    sim = [sys.executable, "-m", "simulators", "--profile", "instant", "--port", str(ports["sim"])]
    gw = [sys.executable, "-m", "gateway", "--config", str(cfg), "--workers", "2"]
    procs = [subprocess.Popen(sim, cwd=ROOT, env=env), subprocess.Popen(gw, cwd=ROOT, env=env)]
    try:
        yield {"ports": ports, "gateway": procs[1], "prom_dir": prom_dir, "log": tmp_path / "requests.jsonl"}
    finally:
        stop(procs)


def _counter_pids(prom_dir: Path) -> set[str]:
    """Workers that have counted something: prometheus_client writes counter_<pid>.db in multi-process mode."""
    return {p.stem.split("_", 1)[1] for p in prom_dir.glob("counter_*.db")}


async def _one(base: str, i: int) -> int:
    # A fresh connection per request, so the kernel spreads them over both workers' accept loops.
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as c:
        body = {"model": "gpt-4o-mini", "stream": i % 2 == 1, "messages": [{"role": "user", "content": "hi"}]}
        r = await c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
        await r.aread()
        return r.status_code


async def _scrape(port: int) -> bytes:
    async with httpx.AsyncClient(timeout=10.0) as c:
        r = await c.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200
        return r.content


def _values(scrape: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(scrape.decode())
        for s in fam.samples
    }


async def test_two_workers_aggregate_metrics_and_flush_the_request_log(processes: dict[str, Any]) -> None:
    ports, prom_dir = processes["ports"], processes["prom_dir"]
    base = f"http://127.0.0.1:{ports['http']}"
    await wait_http(f"http://127.0.0.1:{ports['sim']}/v1/models")
    await wait_http(f"{base}/v1/health")
    sent = 0
    for _ in range(40):
        statuses = await asyncio.gather(*(_one(base, sent + i) for i in range(8)))
        assert statuses == [200] * 8
        sent += 8
        if len(_counter_pids(prom_dir)) == 2:
            break
    assert len(_counter_pids(prom_dir)) == 2, "both workers should have served requests"

    key = (("consumer", "alice"), ("model", "gpt-4o-mini"), ("route", "/v1/chat/completions"), ("status", "200"))
    scrapes = [await _scrape(ports["metrics"]) for _ in range(4)]  # whichever worker answers, it sees both
    for scrape in scrapes:
        values = _values(scrape)
        assert values[("faultline_requests_total", key)] == sent
        assert values[("faultline_requests_in_flight", ())] == 0
        ttft = [v for (n, lb), v in values.items() if n == "faultline_time_to_first_token_seconds_count"]
        assert sum(ttft) == sent
    check = await asyncio.create_subprocess_exec(promtool(), "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE)
    stdout, stderr = await check.communicate(scrapes[0])
    assert (check.returncode, stdout, stderr) == (0, b"", b"")

    assert len(list(prom_dir.glob("gauge_livesum_*.db"))) == 2  # each worker's in-flight gauge
    gateway: subprocess.Popen[bytes] = processes["gateway"]
    gateway.send_signal(signal.SIGTERM)  # graceful: each worker's lifespan flushes its request-log queue
    assert await asyncio.to_thread(gateway.wait, 30) == 0
    assert list(prom_dir.glob("gauge_livesum_*.db")) == []  # stopped workers leave the live sums
    assert len(list(prom_dir.glob("counter_*.db"))) == 2  # their counts stay
    records = list(read_records(processes["log"]))
    assert len(records) == sent
    assert len({r["request_id"] for r in records}) == sent
    assert {(r["status"], r["run_id"]) for r in records} == {(200, "two-workers")}
    assert sorted(r["stream"] for r in records) == [False] * (sent // 2) + [True] * (sent // 2)
