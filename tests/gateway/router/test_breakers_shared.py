from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from gateway.clock import FakeClock
from gateway.quota.limiter import QuotaCounters
from gateway.router.breaker import State, Transition
from gateway.router.breakers import Breakers, RedisBreakerStore
from gateway.settings.router import BreakerSettings
from gateway.settings.store import StateSettings
from gateway.store.client import StateClient
from gateway.store.statestore import StateStore

pytestmark = pytest.mark.redis

S = BreakerSettings(
    min_calls=2, failure_rate=0.5, consecutive_failures=0, cooloff_s=10, half_open_probes=1, cache_s=0.5
)


def bounded(client: StateClient) -> StateStore:
    """The state store as the router uses it: every call bounded, its health kept."""
    return StateStore(client, StateSettings(timeout_s=2.0), events=QuotaCounters())


class Events:
    def __init__(self) -> None:
        self.seen: list[Transition] = []

    def on_transition(self, event: Transition) -> None:
        self.seen.append(event)


async def test_a_breaker_opened_by_one_replica_opens_on_the_other(state_store: aioredis.Redis, key_prefix: str) -> None:
    clock = FakeClock(1000.0)
    ev_a, ev_b = Events(), Events()
    a = Breakers(
        S, clock, store=RedisBreakerStore(bounded(state_store), prefix=key_prefix, origin="a"), listeners=[ev_a]
    )
    b = Breakers(
        S, clock, store=RedisBreakerStore(bounded(state_store), prefix=key_prefix, origin="b"), listeners=[ev_b]
    )
    key = a.key("p", "m")
    await b.refresh([key])  # b caches "nothing stored"
    await a.record(key, False)
    await a.record(key, False)
    assert a.peek(key) is State.OPEN and [e.reason for e in ev_a.seen] == ["failure_rate"]
    await b.refresh([key])
    assert b.peek(key) is State.CLOSED  # within the local cache period: no round trip
    clock.advance(0.6)
    await b.refresh([key])
    assert b.peek(key) is State.OPEN and [e.reason for e in ev_b.seen] == ["shared"]
    assert b.retry_after([key]) == pytest.approx(9.4)
    # b probes after the cool-off and closes it everywhere
    clock.advance(10)
    assert b.admit(key, clock.now())[0]
    await b.record(key, True)
    assert b.peek(key) is State.CLOSED
    clock.advance(0.6)
    await a.refresh([key])
    assert a.peek(key) is State.CLOSED


async def test_store_failure_degrades_to_local_state() -> None:
    class Broken:
        async def publish(self, key: str, state: State, open_until: float, changed_at: float) -> None:
            raise ConnectionError("down")

        async def fetch(self, keys: Sequence[str]) -> list[tuple[State, float, float] | None]:
            raise ConnectionError("down")

    clock = FakeClock()
    br = Breakers(S, clock, store=Broken())
    key = br.key("p", "m")
    await br.refresh([key])
    await br.record(key, False)
    await br.record(key, False)
    assert br.peek(key) is State.OPEN


async def test_store_failures_are_reported() -> None:
    class Broken:
        async def publish(self, key: str, state: State, open_until: float, changed_at: float) -> None:
            raise ConnectionError("down")

        async def fetch(self, keys: Sequence[str]) -> list[tuple[State, float, float] | None]:
            raise TimeoutError("slow")

    seen: list[tuple[str, str]] = []
    clock = FakeClock()
    br = Breakers(S, clock, store=Broken(), on_store_failure=lambda op, err: seen.append((op, err)))
    key = br.key("p", "m")
    await br.refresh([key])
    await br.refresh([key])  # within cache_s: no second read
    await br.record(key, False)
    await br.record(key, False)
    assert seen == [("breaker_fetch", "TimeoutError"), ("breaker_publish", "ConnectionError")]


async def test_a_requests_stale_breakers_are_read_in_one_round_trip(
    state_store: aioredis.Redis, key_prefix: str
) -> None:
    class Counting(RedisBreakerStore):
        def __init__(self) -> None:
            super().__init__(bounded(state_store), prefix=key_prefix, origin="c")
            self.reads: list[list[str]] = []

        async def fetch(self, keys: Sequence[str]) -> list[tuple[State, float, float] | None]:
            self.reads.append(list(keys))
            return await super().fetch(keys)

    clock = FakeClock(1000.0)
    store = Counting()
    writer = Breakers(S, clock, store=RedisBreakerStore(bounded(state_store), prefix=key_prefix, origin="w"))
    await writer.record("p2/m", False)
    await writer.record("p2/m", False)  # p2/m open in the store, p1/m never written
    br = Breakers(S, clock, store=store)
    events = await br.refresh(["p1/m", "p2/m"])
    assert store.reads == [["p1/m", "p2/m"]]
    assert [(e.key, e.to_state) for e in events] == [("p2/m", State.OPEN)]
    clock.advance(0.1)
    assert await br.refresh(["p1/m", "p2/m"]) == [] and len(store.reads) == 1  # cached
