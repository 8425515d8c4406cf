"""Benchmarks of the quota check (``pytest -m bench --benchmark-enable``; skipped in the ordinary test run).

The shared check is one EVALSHA on real Redis ($REDIS_URL): what every limited request pays before the router.
A benchmark, not a test of speed: nothing asserts a duration, only that the measured call did its job.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.clock import SystemClock
from gateway.quota.algorithm import LocalLimiter
from gateway.quota.limiter import QuotaCounters, QuotaLimiter
from gateway.settings.quota import Limits, QuotaSettings
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore

pytestmark = pytest.mark.bench

LIMITS = Limits(rpm=10**9, tpm=10**12, tpd=10**15, max_concurrency=10**6)


def test_bench_check_and_settle_on_real_redis(benchmark: Any, redis_url: str | None, key_prefix: str) -> None:
    """One admitted check (reserve) and its settle: the two round trips of a limited request."""
    if not redis_url:
        pytest.skip("needs a real Redis: set REDIS_URL")
    prefix = key_prefix.replace("[", "-").replace("]", "-")
    with asyncio.Runner() as runner:
        client = aioredis.Redis.from_url(redis_url)
        events = QuotaCounters()
        store = StateStore(client, StateSettings(timeout_s=1.0), events=events)
        lim = QuotaLimiter(store, QuotaSettings(key_prefix=prefix), clock=SystemClock(), events=events)
        runner.run(lim.start())

        async def request() -> None:
            _, r = await lim.check("bench", 50, LIMITS)
            assert r is not None
            await lim.settle(r, 40)

        try:
            benchmark(lambda: runner.run(request()))
            assert events.decisions.get(("ok", "redis"), 0) >= 1 and lim.healthy
        finally:

            async def wipe() -> None:
                async for key in client.scan_iter(match=f"{prefix}:*"):
                    await client.delete(key)
                await client.aclose()

            runner.run(wipe())


def test_bench_local_check(benchmark: Any) -> None:
    """The same decision in process memory (the fail-open fallback), for comparison."""
    lim = LocalLimiter(lease_ms=600_000)
    clock = SystemClock()

    def request() -> None:
        d = lim.check("bench", int(clock.now() * 1000), 50, LIMITS)
        assert d.handle is not None
        lim.settle("bench", d.handle, 40, 0)

    benchmark(request)
