"""The gateway on a Redis Cluster the test starts itself (three masters on free loopback ports, no replicas):
quotas exact across two replicas with consumers spread over the masters, breakers shared, dollar budgets never
overspent. Torn down at the end; every wait is bounded (tests/redisnodes.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from gateway.app import create_app
from gateway.clock import FakeClock, SystemClock
from gateway.config import hash_key
from gateway.quota.clustercalls import script_calls
from gateway.quota.limiter import QuotaCounters
from gateway.router.breaker import State
from gateway.router.breakers import Breakers, RedisBreakerStore
from gateway.settings.router import BreakerSettings
from gateway.settings.store import StateSettings
from gateway.state import connect_state
from gateway.store.statestore import StateStore
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.conftest import make_settings
from tests.redisnodes import redis_cluster

pytestmark = pytest.mark.processes

CONSUMERS = [f"team-{i}" for i in range(6)]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as (ports, _):
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


def settings(**overrides: Any) -> Any:
    consumers = [{"name": n, "key_sha256": hash_key(f"fl-{n}"), "limits": {"rpm": 7}} for n in CONSUMERS]
    return make_settings(consumers=consumers, quota={"replicas": 2}, state={"timeout_s": 1.0}, **overrides)


@contextlib.asynccontextmanager
async def replica(url: str, s: Any) -> AsyncIterator[httpx.AsyncClient]:
    clock = SystemClock()
    sims = {
        f"http://{f}.sim": create_simulator(flavour=f, profile="instant", seed=1, clock=clock)
        for f in ("openai", "vllm")
    }
    state = connect_state(url)
    app = create_app(s, clock=clock, state=state, upstream_transport=AsgiTransport(sims))
    transport = httpx.ASGITransport(app=app)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            yield c
    finally:
        await state.aclose()


async def test_quotas_are_exact_across_two_replicas_on_three_masters(cluster_url: str) -> None:
    client = connect_state(cluster_url)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    nodes = [client.get_node_from_key(f"faultline:{{{n}}}:rpm") for n in CONSUMERS]
    assert None not in nodes  # every key maps to a node
    masters = {node.name for node in nodes if node is not None}
    await client.aclose()
    assert len(masters) >= 2  # the consumers' keys live on more than one master

    s = settings()
    async with replica(cluster_url, s) as a, replica(cluster_url, s) as b:
        calls = [
            (a, b)[i % 2].post("/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer fl-{n}"})
            for i in range(30)
            for n in CONSUMERS
        ]
        replies = await asyncio.gather(*calls)
    by_consumer: dict[str, list[int]] = {n: [] for n in CONSUMERS}
    for i, r in enumerate(replies):
        by_consumer[CONSUMERS[i % len(CONSUMERS)]].append(r.status_code)
    for n, statuses in by_consumer.items():
        assert sorted(set(statuses)) == [200, 429], n
        assert statuses.count(200) == 7, n  # exactly the limit, whatever replica answered


async def test_breakers_are_shared_through_the_cluster(cluster_url: str) -> None:
    s = BreakerSettings(min_calls=2, failure_rate=0.5, consecutive_failures=0, cooloff_s=10, cache_s=0.5)
    clock = FakeClock(1000.0)
    clients = [connect_state(cluster_url), connect_state(cluster_url)]
    a, b = (
        Breakers(
            s,
            clock,
            store=RedisBreakerStore(
                StateStore(c, StateSettings(), events=QuotaCounters()), origin=o, prefix="fl-cluster"
            ),
        )
        for c, o in zip(clients, "ab", strict=True)
    )
    keys = [a.key(p, "m") for p in ("p1", "p2", "p3", "p4")]  # no hash tag: spread over the slots
    for key in keys:
        await a.record(key, False)
        await a.record(key, False)
    await b.refresh(keys)
    assert [b.peek(k) for k in keys] == [State.OPEN] * 4
    for c in clients:
        await c.aclose()


async def test_budgets_are_never_overspent_across_two_replicas(cluster_url: str) -> None:
    consumers = [{"name": "cent", "key_sha256": hash_key("fl-cent"), "budget": {"usd_per_day": 0.01}}]
    s = make_settings(
        consumers=consumers,
        state={"timeout_s": 1.0},
        quota={"key_prefix": "fl-budget"},
        prices={"gpt-4o-mini": {"input_per_1m": 15.0, "output_per_1m": 60.0}},
    )
    async with replica(cluster_url, s) as a, replica(cluster_url, s) as b:
        calls = [
            (a, b)[i % 2].post("/v1/chat/completions", json=BODY, headers={"authorization": "Bearer fl-cent"})
            for i in range(60)
        ]
        replies = await asyncio.gather(*calls)
    ok = [r for r in replies if r.status_code == 200]
    assert {r.status_code for r in replies} == {200, 403}
    spent = sum(
        (r.json()["usage"]["prompt_tokens"] * 15.0 + r.json()["usage"]["completion_tokens"] * 60.0) / 1e6 for r in ok
    )
    assert 0 < spent <= 0.01


async def test_a_call_sent_to_a_master_that_no_longer_owns_its_slot_is_redirected(cluster_url: str) -> None:
    """As after a resharding or a failover: the slot map says master A, the slot is B's. The call answered MOVED is
    sent again through the cluster client, which follows it and corrects the map; the next call goes to B."""
    client = connect_state(cluster_url)
    assert isinstance(client, RedisCluster)
    script = "return redis.call('INCR', KEYS[1])"
    calls = script_calls(client, timeout_s=2.0, scripts=(script,))
    await calls.ping()
    sha = await client.script_load(script)
    key = "fl-moved:{c}:n"
    slots = client.nodes_manager.slots_cache
    owner = slots[key_slot(key.encode())][0]
    stranger = next(n for n in client.get_primaries() if n.name != owner.name)
    slots[key_slot(key.encode())] = [stranger]  # a stale map
    assert await calls.evalsha(sha, [key], []) == 1  # MOVED, then answered by the owner
    assert slots[key_slot(key.encode())][0].name == owner.name  # the map is right again
    assert await calls.evalsha(sha, [key], []) == 2
    await calls.aclose()
    await client.delete(key)
    await client.aclose()


async def test_idempotency_and_the_cache_on_the_cluster(cluster_url: str) -> None:
    """A replay by Idempotency-Key on the other replica, and a cached answer served by the other replica."""
    consumers = [{"name": "idem", "key_sha256": hash_key("fl-idem")}]
    s = make_settings(consumers=consumers, cache={"groups": ["gpt-4o-mini"]}, state={"timeout_s": 1.0})
    auth = {"authorization": "Bearer fl-idem"}
    async with replica(cluster_url, s) as a, replica(cluster_url, s) as b:
        first = await a.post("/v1/chat/completions", json=BODY, headers={**auth, "idempotency-key": "k-1"})
        again = await b.post("/v1/chat/completions", json=BODY, headers={**auth, "idempotency-key": "k-1"})
        assert first.status_code == again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
        cacheable = {**BODY, "temperature": 0}
        miss = await a.post("/v1/chat/completions", json=cacheable, headers=auth)
        hit = await b.post("/v1/chat/completions", json=cacheable, headers=auth)
        assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
        assert hit.json() == miss.json()
