"""Settles that cannot reach the state store: queued, replayed once it answers again, never charged twice."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.clock import FakeClock
from gateway.quota.limiter import QuotaCounters, QuotaLimiter, Reservation
from gateway.settings.quota import Limits, QuotaSettings
from gateway.store.statestore import StateStore
from tests.gateway.quota.conftest import SwitchedState, store_for

pytestmark = pytest.mark.redis

LIMITS = Limits(tpm=1000, tpd=10_000, max_concurrency=1)


@pytest.fixture
def state(state_store: aioredis.Redis) -> SwitchedState:
    """The state store, which a test takes down (``state.dead = True``) and brings back."""
    return SwitchedState(state_store)


def make(state: Any, prefix: str, failures: int = 1, **quota: Any) -> tuple[QuotaLimiter, QuotaCounters, StateStore]:
    """``failures``: failed round trips before an outage (3: one failed settle is not an outage)."""
    events = QuotaCounters()
    qs = QuotaSettings(key_prefix=prefix, **quota)
    store = store_for(state, events, outage_after_failures=failures)
    return QuotaLimiter(store, qs, clock=FakeClock(), events=events), events, store


async def used(lim: QuotaLimiter) -> tuple[int, int, int]:
    """(tokens in the TPM window, tokens today, requests in flight) before a 1-token probe check."""
    d, r = await lim.check("a", 1, Limits(tpm=10**9, tpd=10**9))
    assert r is not None
    await lim.settle(r, 0)
    return d.tok_used - 1, d.day_used - 1, d.inflight - 1


async def reserve(lim: QuotaLimiter, tokens: int) -> Reservation:
    d, r = await lim.check("a", tokens, LIMITS)
    assert d.admitted and r is not None and r.backend == "redis"
    return r


async def test_a_failed_settle_is_replayed_after_the_next_successful_call(state: SwitchedState, prefix: str) -> None:
    lim, events, _ = make(state, prefix, failures=3)
    r = await reserve(lim, 100)
    state.dead = True  # the store goes away mid-request
    assert await lim.settle(r, 30) is None
    assert (events.errors, events.settles, events.settles_lost, lim.unsettled) == ({"settle": 1}, 0, 0, 1)
    await state.revive()  # back: the first call that succeeds starts the replay
    rejected, _ = await lim.check("a", 1, LIMITS)
    assert (rejected.kind, rejected.inflight) == ("concurrency", 1)  # the unsettled request still holds its lease
    await lim.replayed()
    assert (events.settles, lim.unsettled) == (1, 0)
    assert await used(lim) == (30, 30, 0)  # charged its usage, not its estimate; lease released
    await lim.stop()


async def test_a_settle_that_reached_the_store_is_not_charged_again_on_replay(
    state: SwitchedState, state_store: aioredis.Redis, prefix: str
) -> None:
    """A settle Redis applied, though this replica saw it fail, is replayed: the replay changes nothing."""
    lim, events, _ = make(state, prefix, failures=3)
    other, _, _ = make(state_store, prefix)  # another replica on the same store
    r = await reserve(lim, 100)
    assert await other.settle(r, 30) == -70  # applied on Redis
    state.dead = True  # ... while this replica's own settle of it fails
    assert await lim.settle(r, 30) is None
    assert (events.errors, lim.unsettled) == ({"settle": 1}, 1)
    await state.revive()
    await lim.check("b", 1, LIMITS)  # the first successful call starts the replay
    await lim.replayed()
    assert (events.settles, events.settles_lost, lim.unsettled) == (0, 1, 0)  # the replay applied nothing
    assert await used(lim) == (30, 30, 0)
    await other.stop()
    await lim.stop()


async def test_during_an_outage_settles_queue_without_calling_the_store(state: SwitchedState, prefix: str) -> None:
    lim, events, store = make(state, prefix)
    r1 = await reserve(lim, 100)
    state.dead = True
    _, r2 = await lim.check("a", 10, LIMITS)  # fails over to the local limiter (fail-open)
    assert r2 is not None and r2.backend == "local" and events.errors["check"] == 1
    assert await lim.settle(r1, 40) is None
    assert "settle" not in events.errors  # no settle was attempted against the dead store (only probes were)
    assert await lim.settle(r2, 8) == -2  # the local reservation settles locally
    await state.revive()
    await store.recovery()  # the probe, on its own task, finds the store back: the queued settles replay
    await lim.replayed()
    assert (lim.healthy, lim.unsettled, events.recoveries) == (True, 0, 1)
    store.begin_request()  # a new request: the failure of the earlier one does not count
    assert await used(lim) == (40, 40, 0)
    await lim.stop()


async def test_a_full_queue_drops_the_oldest_and_counts_it_lost(state: SwitchedState, prefix: str) -> None:
    lim, events, _ = make(state, prefix, failures=3, max_unsettled=1)
    first = await reserve(lim, 100)
    second, _ = await lim.check("b", 50, Limits(tpd=10_000))
    assert second.handle is not None
    state.dead = True
    await lim.settle(first, 10)
    await lim.settle(Reservation("b", second.handle, first.day, "redis"), 5)
    assert (events.settles_lost, lim.unsettled) == (1, 1)
    await state.revive()
    await lim.check("b", 1, Limits(tpd=10_000))
    await lim.replayed()
    assert await used(lim) == (100, 100, 1)  # "a" keeps its estimate and its lease (until the lease expires)
    await lim.stop()


async def test_stop_reports_what_is_still_queued_as_lost(state: SwitchedState, prefix: str) -> None:
    lim, events, _ = make(state, prefix)
    r = await reserve(lim, 100)
    state.dead = True
    await lim.settle(r, 10)
    await lim.stop()
    assert (events.settles_lost, lim.unsettled) == (1, 0)
