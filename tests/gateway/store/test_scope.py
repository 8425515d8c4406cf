"""A request meets a failing store once at most: after one of its calls failed, the store is not usable for the
rest of that request, while other requests (their own tasks) and the next request in this context still use it."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from gateway.quota.limiter import QuotaCounters
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore


async def test_a_failed_call_ends_the_requests_calls_only() -> None:
    store = StateStore(fakeredis.FakeAsyncRedis(), StateSettings(outage_after_failures=3), events=QuotaCounters())
    store.begin_request()

    async def other_request() -> bool:
        store.begin_request()
        return store.usable

    with pytest.raises(ConnectionError):
        async with store.bounded("check"):
            raise ConnectionError("refused")
    assert store.healthy and not store.usable  # up for everyone; not for this request
    assert await asyncio.get_running_loop().create_task(other_request())
    store.begin_request()  # the next request in this context
    assert store.usable
