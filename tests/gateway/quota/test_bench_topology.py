"""What a script call costs on one server (the ordered connection) and on a three-master Redis Cluster, with one
ordered connection per master (ClusterMux, what the gateway uses) and with each call routed by redis-py's cluster
client (ClusterScripts): 3,000 calls one at a time and 32 at a time, wall time and this process's CPU per call,
printed (``pytest -m bench --benchmark-only -s tests/gateway/quota/test_bench_topology.py``; skipped in the
ordinary test run). A benchmark, not a test of speed: it asserts only that every call was answered."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.quota.clustercalls import ClusterScripts, ScriptCalls, script_calls
from gateway.state import connect_state
from tests.processes import free_port
from tests.redisnodes import _cli, _server, _until, redis_cluster, stop_all

pytestmark = pytest.mark.bench

CALLS = 3000
SCRIPT = "return redis.call('INCR', KEYS[1])"


async def measure(url: str, label: str, routed: bool = False) -> None:
    client = connect_state(url)
    sha = await client.script_load(SCRIPT)
    calls: ScriptCalls = (
        ClusterScripts(client, timeout_s=2.0)
        if routed and isinstance(client, RedisCluster)
        else script_calls(client, timeout_s=2.0, scripts=(SCRIPT,))
    )
    await calls.ping()
    for concurrency in (1, 32):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(0, CALLS, concurrency):
            got = await asyncio.gather(*(calls.evalsha(sha, [f"bench:{{c{j % 8}}}:n"], []) for j in range(concurrency)))
            assert all(isinstance(n, int) and n > 0 for n in got)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{label}, {concurrency} at a time: {wall / CALLS * 1e6:.0f} us a call, {cpu / CALLS * 1e6:.0f} us CPU")
    await calls.aclose()
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
        asyncio.run(measure(url, "three-master cluster (an ordered connection per master)"))
        asyncio.run(measure(url, "three-master cluster (each call routed by the cluster client)", routed=True))
