"""The state-store failure policy: a dead port, a server that never answers, a server stopped and restarted."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
import redis.asyncio as aioredis

from gateway.clock import FakeClock
from gateway.errors import Unavailable
from gateway.quota.limiter import QuotaCounters, QuotaLimiter, replica_share
from gateway.settings.quota import Limits, QuotaSettings
from gateway.store.statestore import StateStore
from tests.gateway.quota.conftest import SwitchedState, store_for, until
from tests.processes import free_port
from tests.tools import tool

DEAD = "redis://127.0.0.1:1/0"


def limiter(
    redis: Any, policy: Literal["open", "closed"] = "open", replicas: int = 1, prefix: str = "t", failures: int = 1
) -> tuple[QuotaLimiter, QuotaCounters, StateStore]:
    qs = QuotaSettings(failure_policy=policy, replicas=replicas, key_prefix=prefix)
    events = QuotaCounters()
    store = store_for(redis, events, timeout_s=0.2, outage_after_failures=failures)
    return QuotaLimiter(store, qs, clock=FakeClock(), events=events), events, store


@pytest.fixture
async def dead() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(DEAD, socket_connect_timeout=0.2)
    yield client
    await client.aclose()


def test_replica_share() -> None:
    assert replica_share(Limits(rpm=100, tpm=1001, tpd=3, max_concurrency=None), 3) == Limits(
        rpm=33, tpm=333, tpd=1, max_concurrency=None
    )
    assert replica_share(Limits(rpm=7), 1) == Limits(rpm=7)


async def test_fail_open_enforces_this_replicas_share(dead: aioredis.Redis) -> None:
    lim, events, _ = limiter(dead, "open", replicas=2)
    await lim.start()
    got = [(await lim.check("a", 1, Limits(rpm=4)))[0] for _ in range(3)]
    assert [(d.admitted, d.kind) for d in got] == [(True, "ok"), (True, "ok"), (False, "requests")]
    assert (events.outages, events.recoveries, lim.healthy) == (1, 0, False)
    assert events.decisions == {("ok", "local"): 2, ("requests", "local"): 1}
    await lim.stop()


async def test_fail_closed_answers_503(dead: aioredis.Redis) -> None:
    lim, events, _ = limiter(dead, "closed")
    with pytest.raises(Unavailable) as exc:
        await lim.check("a", 1, Limits(rpm=4))
    assert exc.value.status == 503
    assert exc.value.headers["retry-after"] == "1"
    assert events.outages == 1
    await lim.stop()


async def test_an_outage_takes_consecutive_failures_and_then_spares_the_store(dead: aioredis.Redis) -> None:
    """Each failed check gets the policy's answer; only ``outage_after_failures`` in a row declare an outage,
    after which requests no longer call the store at all."""
    lim, events, store = limiter(dead, "open", failures=3)
    for n in (1, 2):
        store.begin_request()  # each check is a request of its own (a failed call ends a request's calls)
        assert (await lim.check("a", 1, Limits(rpm=4)))[1] is not None  # admitted locally
        assert (events.errors, events.outages, lim.healthy) == ({"check": n}, 0, True)
    store.begin_request()
    await lim.check("a", 1, Limits(rpm=4))
    assert (events.errors, events.outages, lim.healthy) == ({"check": 3}, 1, False)
    await lim.check("a", 1, Limits(rpm=4))
    assert events.errors["check"] == 3  # straight to the fallback: the store is probed on its own task
    await lim.stop()


async def test_a_probe_off_the_request_path_ends_the_outage_and_clears_the_local_windows(
    state_store: aioredis.Redis, prefix: str
) -> None:
    state = SwitchedState(state_store)
    lim, events, store = limiter(state, "open", prefix=prefix)
    await lim.start()
    state.dead = True
    local = [(await lim.check("a", 1, Limits(rpm=2)))[0] for _ in range(3)]
    assert [(d.admitted, d.kind) for d in local] == [(True, "ok"), (True, "ok"), (False, "requests")]
    assert not lim.healthy
    await until(lambda: events.errors.get("probe", 0) >= 1)  # the probe, on its own task, found it down
    await state.revive()
    await store.recovery()  # no request needed: the probe task found the store back
    assert (lim.healthy, events.recoveries) == (True, 1)
    assert events.false_outages == 0  # it had probed the dead store first: a real outage
    store.begin_request()  # a new request: the failure of the earlier one does not count
    back, _ = await lim.check("a", 1, Limits(rpm=2))
    assert (back.admitted, back.req_used) == (True, 1)  # Redis counts again, from its own window
    state.dead = True
    for _ in range(2):  # a new outage starts from empty local windows, not the previous outage's
        d, _ = await lim.check("a", 1, Limits(rpm=2))
        assert d.admitted and d.req_used <= 2
    await lim.stop()


async def test_an_outage_answered_by_its_first_probe_is_counted_false(state_store: aioredis.Redis, prefix: str) -> None:
    lim, events, store = limiter(state_store, "open", prefix=prefix)
    store.outage("check: TimeoutError")  # as if a slow moment had been taken for an outage
    await store.recovery()
    assert (lim.healthy, events.outages, events.recoveries, events.false_outages) == (True, 1, 1, 1)


async def test_a_store_that_never_answers_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        lim, events, _ = limiter(client, "closed")
        with pytest.raises(Unavailable):
            await lim.check("a", 1, Limits(rpm=1))
        assert events.errors == {"check": 1}
        await lim.stop()
    finally:
        await client.aclose()
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.redis
async def test_fail_open_keeps_the_days_use_seen_on_the_store(state_store: aioredis.Redis, prefix: str) -> None:
    """An outage does not hand out a fresh daily budget: this replica starts from its share of the day's use."""
    state = SwitchedState(state_store)
    lim, events, _ = limiter(state, "open", replicas=2, prefix=prefix)
    limits = Limits(tpd=1000)
    d, _ = await lim.check("a", 600, limits)
    assert (d.admitted, d.day_used) == (True, 600)
    state.dead = True
    # this replica's share: 1000 // 2 = 500 a day, of which 600 / 2 = 300 already used
    a, _ = await lim.check("a", 150, limits)
    b, _ = await lim.check("a", 100, limits)
    assert [(x.admitted, x.kind, x.day_used) for x in (a, b)] == [(True, "ok", 450), (False, "day", 450)]
    assert events.decisions == {("ok", "redis"): 1, ("ok", "local"): 1, ("day", "local"): 1}
    await lim.stop()


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A private redis-server on a free port (never the shared one), stopped at the end."""
    tool("redis-server")
    port, procs = free_port(), list[subprocess.Popen[bytes]]()
    yield port, procs
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def _start(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )


async def _ready(client: aioredis.Redis) -> None:
    for _ in range(200):
        try:
            await client.ping()
            return
        except (OSError, aioredis.ConnectionError):
            await asyncio.sleep(0.02)  # waiting for a real process to listen
    raise AssertionError("redis-server did not start")


@pytest.mark.processes
@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_stop_and_restart_a_real_server(
    own_redis: tuple[int, list[subprocess.Popen[bytes]]], policy: Literal["open", "closed"]
) -> None:
    port, procs = own_redis
    procs.append(_start(port))
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    try:
        await _ready(client)
        lim, events, store = limiter(client, policy)
        await lim.start()
        limits = Limits(rpm=2)
        first, _ = await lim.check("a", 1, limits)
        assert (first.admitted, first.req_used) == (True, 1)

        procs[0].terminate()
        procs[0].wait(timeout=10)
        if policy == "open":
            outage, _ = await lim.check("a", 1, limits)
            assert (outage.admitted, outage.req_used) == (True, 1)  # the local limiter's own count
        else:
            with pytest.raises(Unavailable):
                await lim.check("a", 1, limits)
        assert (events.outages, lim.healthy) == (1, False)

        procs.append(_start(port))
        await _ready(client)
        await store.recovery()
        store.begin_request()  # a new request: the failure of the earlier one does not count
        back, _ = await lim.check("a", 1, limits)
        assert (back.admitted, back.req_used) == (True, 1)  # a fresh server: shared counting resumes
        second, _ = await lim.check("a", 1, limits)
        assert (second.admitted, second.req_used) == (True, 2)
        assert not (await lim.check("a", 1, limits))[0].admitted
        assert (events.recoveries, lim.healthy) == (1, True)
        await lim.stop()
    finally:
        await client.aclose()
