"""A Redis Cluster master lost under load: three masters with a replica each (started by the test on free
loopback ports), a gateway replica with ``failure_policy: closed`` sending requests for a consumer whose keys live
on one master, that master killed. Its replica takes over; meanwhile that consumer's requests get 503 and are
answered, none held until the failover ends; afterwards they are admitted on Redis again, exactly up to the
limit. Asserted on order and counts, not durations (printed with ``-s``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.crc import key_slot

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import hash_key
from gateway.state import connect_state
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.conftest import make_settings
from tests.redisnodes import cluster_master_of, redis_cluster

pytestmark = pytest.mark.processes

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
AUTH = {"authorization": "Bearer fl-moving"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[int], list[object]]]:
    with redis_cluster(tmp_path, masters=3, replicas=1) as nodes:
        yield nodes  # type: ignore[misc]


async def test_a_killed_master_is_replaced_by_its_replica(cluster: tuple[list[int], list[object]]) -> None:
    ports, procs = cluster
    consumers = [{"name": "moving", "key_sha256": hash_key("fl-moving"), "limits": {"rpm": 100_000}}]
    s = make_settings(consumers=consumers, quota={"failure_policy": "closed"})
    clock = SystemClock()
    sims = {
        f"http://{f}.sim": create_simulator(flavour=f, profile="instant", seed=1, clock=clock)
        for f in ("openai", "vllm")
    }
    state = connect_state("redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports))
    app = create_app(s, clock=clock, state=state, upstream_transport=AsgiTransport(sims))
    answers: list[tuple[float, float, int]] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c,
    ):

        async def send() -> None:
            t = time.monotonic()
            r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
            answers.append((t, time.monotonic() - t, r.status_code))

        for _ in range(20):
            await send()
        master = cluster_master_of(ports[0], key_slot(b"moving"))
        procs[ports.index(master)].kill()  # type: ignore[attr-defined]
        killed = time.monotonic()
        recovered = 0.0
        for _ in range(3000):  # until requests are admitted on the new master (a bounded number of tries)
            await send()
            if answers[-1][2] == 200 and answers[-2][2] == 200 and any(a[2] == 503 for a in answers):
                recovered = answers[-2][0]
                break
            await asyncio.sleep(0.01)
        for _ in range(10):
            await send()
    await state.aclose()

    assert recovered, "the consumer's requests never got back to Redis"
    assert cluster_master_of(next(p for p in ports if p != master), key_slot(b"moving")) not in (0, master)
    before = [a for a in answers if a[0] + a[1] < killed]
    during = [a for a in answers if a[0] >= killed and a[0] < recovered]
    after = [a for a in answers if a[0] >= recovered]
    assert {a[2] for a in before} == {200} and {a[2] for a in after} == {200}
    assert 503 in {a[2] for a in during} and {a[2] for a in during} <= {200, 503}
    answered_during = [a for a in during if a[0] + a[1] < recovered]
    assert answered_during, "no request sent during the failover was answered before it ended"
    print(
        f"CLUSTER failover: requests admitted again {recovered - killed:.2f} s after the kill, "
        f"slowest during {max(a[1] for a in during):.3f} s, before {max(a[1] for a in before):.3f} s"
    )
