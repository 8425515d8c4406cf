"""A Sentinel failover under load: a real gateway process on ``redis+sentinel://`` (a master, a replica and a
Sentinel started by the test on free loopback ports), its master killed mid-traffic. While the Sentinel elects the
replica, requests get the failure policy's answer (``open``: admitted by the local limiter; ``closed``: 503) and
requests sent during the switch are answered before it ends; once the new master is known the gateway reconnects
by itself (the Sentinel-managed pool asks the Sentinel at each new connection) and every request is checked on
Redis again. Asserted on the order of sends, answers, kill and recovery, not on durations (printed with ``-s``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from redis.exceptions import RedisError

from gateway.config import hash_key
from gateway.quota.redis_store import RedisLimiter
from gateway.settings.quota import Limits
from gateway.state import connect_state
from tests.gateway.quota.test_hung_store import KEY, _start, traffic
from tests.processes import free_port, stop, wait_http
from tests.redisnodes import failover, redis_sentinel, sentinel_master

pytestmark = pytest.mark.processes


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with redis_sentinel(tmp_path) as s:
        yield s


@pytest.fixture(params=["open", "closed"])
async def gateway(
    request: pytest.FixtureRequest, sentinel: dict[str, Any], tmp_path: Path
) -> AsyncIterator[tuple[str, dict[str, Any], str]]:
    port, sim_port = free_port(), free_port()
    config = {
        "seed": 3,
        "server": {"metrics_port": 0},
        "consumers": [{"name": "c", "key_sha256": hash_key(KEY), "limits": {"rpm": 100_000}}],
        "providers": [{"name": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "quota": {"failure_policy": request.param},
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    url = f"redis+sentinel://127.0.0.1:{sentinel['sentinel']}/{sentinel['name']}"
    procs = _start(cfg, sim_port, port, url)
    try:
        await wait_http(f"http://127.0.0.1:{port}/v1/health")
        yield f"http://127.0.0.1:{port}", sentinel, request.param
    finally:
        stop(procs)


async def ready_store(url: str, want: str) -> float:
    """When (monotonic) the gateway first reports its state store ``want`` on /v1/ready (polling a real process)."""
    async with httpx.AsyncClient() as c:
        for _ in range(600):
            if (await c.get(f"{url}/v1/ready")).json()["state_store"] == want:
                return time.monotonic()
            await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway never reported the state store {want}")


async def test_a_killed_master_is_replaced_and_no_request_waits_for_the_failover(
    gateway: tuple[str, dict[str, Any], str],
) -> None:
    url, s, policy = gateway
    answers: list[tuple[float, float, int]] = []
    stop = asyncio.Event()
    load = asyncio.ensure_future(traffic(url, answers, stop))
    await asyncio.sleep(1.0)  # real traffic against a real process: a while before the kill
    old = sentinel_master(s["sentinel"], s["name"])
    s["procs"][0].kill()  # the master, without a goodbye
    killed = time.monotonic()
    await ready_store(url, "down")
    recovered = await ready_store(url, "up")  # the new master answered the gateway's probe
    for _ in range(600):  # until some requests were sent and answered after that
        if sum(1 for a in answers if a[0] >= recovered) >= 8:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await load
    assert sentinel_master(s["sentinel"], s["name"]) not in (0, old)  # the replica was promoted

    before = [a for a in answers if a[0] + a[1] < killed]
    during = [a for a in answers if a[0] + a[1] >= killed and a[0] < recovered]
    after = [a for a in answers if a[0] >= recovered]
    assert before and during and after
    assert {st for _, _, st in before} == {200}
    assert {st for _, _, st in during} <= {200, 503}
    assert (503 in {st for _, _, st in during}) == (policy == "closed")
    assert {st for _, _, st in after} == {200}, "quotas resume on the new master"
    answered_while_switching = [a for a in during if a[0] >= killed and a[0] + a[1] < recovered]
    assert answered_while_switching, "no request sent during the failover was answered before it ended"
    worst_before = max(d for _, d, _ in before)
    worst = max(d for _, d, _ in during)
    print(f"SENTINEL {policy}: store back {recovered - killed:.2f} s after the kill, gain {worst - worst_before:.3f} s")


async def test_a_graceful_failover_moves_the_ordered_connection_to_the_new_master(sentinel: dict[str, Any]) -> None:
    """``SENTINEL FAILOVER``: the old master is demoted and drops its clients; the quota's ordered connection
    reconnects through the Sentinel to the promoted replica, whose copy of the windows goes on counting."""
    client = connect_state(f"redis+sentinel://127.0.0.1:{sentinel['sentinel']}/{sentinel['name']}", timeout_s=1.0)
    lim = RedisLimiter(client, prefix="fl-sentinel", lease_ms=600_000, timeout_s=1.0)
    await lim.load()
    limits = Limits(rpm=1000)
    assert (await lim.check("a", 1_000, 1, limits)).req_used == 1
    await asyncio.sleep(0.5)  # let the replica take the write (replication is asynchronous)
    old = sentinel_master(sentinel["sentinel"], sentinel["name"])
    failover(sentinel["sentinel"], sentinel["name"])
    seen: list[int | str] = []
    for _ in range(300):  # until a check is answered by the new master (bounded)
        try:
            seen.append((await lim.check("a", 2_000, 1, limits)).req_used)
        except (RedisError, OSError, TimeoutError) as exc:
            seen.append(type(exc).__name__)
        if sentinel_master(sentinel["sentinel"], sentinel["name"]) not in (0, old) and isinstance(seen[-1], int):
            break
        await asyncio.sleep(0.05)
    await lim.aclose()
    await client.aclose()
    for asked in client.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]  # a Sentinel pool
        await asked.aclose()
    assert sentinel_master(sentinel["sentinel"], sentinel["name"]) not in (0, old)
    counts = [n for n in seen if isinstance(n, int)]
    assert counts == list(range(2, 2 + len(counts)))  # every admitted check counted once, on one window
