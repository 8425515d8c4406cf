"""Budgets on the state store (real Redis when REDIS_URL is set): all-or-nothing reservations, exact refusals,
once-only settles."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.budget.dollars import Limit, nano
from gateway.budget.redisbudgets import RedisBudgets
from gateway.quota.limiter import QuotaCounters
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore

NOW = 1_796_342_400_000  # 2026-12-04T00:00:00Z


def budgets(state: Any, prefix: str) -> RedisBudgets:
    store = StateStore(state, StateSettings(timeout_s=2.0), events=QuotaCounters())
    return RedisBudgets(store, prefix=prefix, reservation_ttl_ms=600_000)


async def test_a_reservation_fits_in_every_budget_or_in_none(state_store: Any, key_prefix: str) -> None:
    b = budgets(state_store, key_prefix)
    await b.load()
    limits = [Limit("key", "k", "day", 100), Limit("consumer", "c", "month", 150)]
    first, _ = await b.reserve("c", limits, 80, NOW)
    assert first.admitted and first.used == (80, 80)
    refused, _ = await b.reserve("c", [Limit("key", "k2", "day", 100), limits[1]], 80, NOW)
    assert not refused.admitted and refused.refused == 1 and refused.used == (0, 80)
    after, _ = await b.reserve("c", [Limit("key", "k2", "day", 100)], 10, NOW)
    assert after.used == (10,)  # the refused reservation changed nothing


async def test_settling_replaces_the_worst_case_once(state_store: Any, key_prefix: str) -> None:
    b = budgets(state_store, key_prefix)
    await b.load()
    limits = [Limit("key", "k", "day", 100)]
    out, counters = await b.reserve("c", limits, 60, NOW)
    assert out.handle is not None
    assert await b.settle("c", counters, out.handle, 25) == -35
    assert await b.settle("c", counters, out.handle, 0) is None  # once
    exact, _ = await b.reserve("c", limits, 75, NOW)  # 25 + 75 = 100: fits exactly
    assert exact.admitted and exact.used == (100,)
    over, _ = await b.reserve("c", limits, 1, NOW)
    assert not over.admitted


async def test_concurrent_reservations_never_overspend(state_store: Any, key_prefix: str) -> None:
    b = budgets(state_store, key_prefix)
    await b.load()
    limits = [Limit("key", "k", "day", nano(0.01))]
    outs = await asyncio.gather(*(b.reserve("c", limits, nano(0.0007), NOW) for _ in range(40)))
    admitted = [o for o, _ in outs if o.admitted]
    assert len(admitted) == 14  # 14 x 0.0007 = 0.0098; a 15th would pass 0.01
    assert max(o.used[0] for o in admitted) == nano(0.0098)
