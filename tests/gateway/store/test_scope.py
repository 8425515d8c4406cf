"""A request meets a failing store once at most: after one of its calls failed, the store is not usable for the
rest of that request (a failure in a task the request started, such as a hedged attempt, included), while other
requests (their own tasks) and the next request in this context still use it."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from gateway.call import Call, Reply
from gateway.quota.limiter import QuotaCounters
from gateway.settings.store import StateSettings
from gateway.store.scope import StoreScope
from gateway.store.statestore import StateStore
from tests.calls import build_call


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


async def test_a_failed_call_in_a_task_of_the_request_ends_the_requests_calls() -> None:
    store = StateStore(fakeredis.FakeAsyncRedis(), StateSettings(outage_after_failures=3), events=QuotaCounters())
    seen: list[bool] = []

    async def failing_call() -> None:  # e.g. a hedged attempt's breaker publish, in a task of its own
        with pytest.raises(ConnectionError):
            async with store.bounded("breaker publish"):
                raise ConnectionError("refused")

    async def handler(call: Call) -> Reply:
        seen.append(store.usable)
        await asyncio.get_running_loop().create_task(failing_call())
        seen.append(store.usable)  # the request's own task: its next call is not made
        return Reply()

    await StoreScope(store)(build_call(), handler)
    assert seen == [True, False]
    assert store.healthy
