"""The quota check's cost on one server (the ordered connection) against a three-master Redis Cluster (each call
routed by the cluster client): 3,000 checks one at a time and 32 at a time, wall time and this process's CPU per
call, printed (``pytest -m bench --benchmark-only -s tests/gateway/quota/test_bench_topology.py``; skipped in the
ordinary test run). A benchmark, not a test of speed: it
asserts only that every check was answered by Redis."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.quota.redis_store import RedisLimiter
from gateway.settings.quota import Limits
from gateway.state import connect_state
from tests.processes import free_port
from tests.redisnodes import _cli, _server, _until, redis_cluster, stop_all

pytestmark = pytest.mark.bench

CALLS = 3000
LIMITS = Limits(rpm=10**9)


async def measure(url: str, label: str) -> None:
    client = connect_state(url)
    lim = RedisLimiter(client, prefix="bench-topology", lease_ms=600_000, timeout_s=2.0)
    await lim.load()
    for concurrency in (1, 32):
        wall, cpu = time.perf_counter(), time.process_time()
        for k in range(0, CALLS, concurrency):
            got = await asyncio.gather(*(lim.check(f"c{j % 8}", 1000 + k + j, 1, LIMITS) for j in range(concurrency)))
            assert all(d.admitted for d in got)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{label}, {concurrency} at a time: {wall / CALLS * 1e6:.0f} us a call, {cpu / CALLS * 1e6:.0f} us CPU")
    await lim.aclose()
    await client.aclose()


def test_bench_one_server_against_a_cluster(benchmark: Any, tmp_path: Path) -> None:
    benchmark.pedantic(compare, args=(tmp_path,), rounds=1, iterations=1)


def compare(tmp_path: Path) -> None:
    port = free_port()
    proc: subprocess.Popen[bytes] = _server(port, tmp_path)
    try:
        _until(lambda: "PONG" in _cli(port, "ping"), "the server did not answer")
        asyncio.run(measure(f"redis://127.0.0.1:{port}/0", "one server (ordered connection)"))
    finally:
        stop_all([proc])
    with redis_cluster(tmp_path) as (ports, _):
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
        asyncio.run(measure(url, "three-master cluster (routed per call)"))
