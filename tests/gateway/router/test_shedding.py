from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from gateway.clock import LoopClock, run_virtual
from gateway.router.shedding import LoadShedder, Shed, global_ceiling
from gateway.settings.router import SheddingSettings

T = TypeVar("T")


@pytest.mark.parametrize(
    ("limit", "reserve", "priority", "ceiling"),
    [(100, 0.2, 9, 100), (100, 0.2, 0, 80), (100, 0.2, 1, 83), (100, 0.0, 0, 100), (10, 0.5, 0, 5)],
)
def test_global_ceiling_by_priority(limit: int, reserve: float, priority: int, ceiling: int) -> None:
    assert global_ceiling(limit, reserve, priority) == ceiling


def test_low_priority_is_shed_first_at_the_global_limit() -> None:
    s = LoadShedder(SheddingSettings(global_limit=10, priority_reserve=0.5), LoopClock())
    for _ in range(5):
        s.enter(0)
    with pytest.raises(Shed) as exc:
        s.enter(0)
    assert exc.value.reason == "global_limit"
    for _ in range(5):
        s.enter(9)
    with pytest.raises(Shed):
        s.enter(9)
    s.leave()
    s.enter(9)


@pytest.mark.parametrize(("priority", "admitted"), [(-3, 5), (0, 5), (4, 8), (9, 10), (12, 10)])
def test_global_gate_admits_up_to_the_ceiling_of_the_priority(priority: int, admitted: int) -> None:
    s = LoadShedder(SheddingSettings(global_limit=10, priority_reserve=0.5), LoopClock())
    n = 0
    with pytest.raises(Shed):
        while True:
            s.enter(priority)
            n += 1
    assert n == admitted == global_ceiling(10, 0.5, priority)


def test_try_acquire_takes_only_a_free_slot() -> None:
    s = LoadShedder(SheddingSettings(provider_limit=1), LoopClock())
    assert s.try_acquire("p")
    assert not s.try_acquire("p")
    assert s.in_flight_at("p") == 1
    s.release("p")
    assert s.in_flight_at("p") == 0


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_virtual(coro)


def test_queue_hands_slots_to_the_most_important_waiter() -> None:
    async def main() -> list[str]:
        s = LoadShedder(SheddingSettings(provider_limit=1, queue_limit=4, max_queue_wait_s=10), LoopClock())
        await s.acquire("p", 1)
        order: list[str] = []

        async def waiter(name: str, prio: int) -> None:
            await s.acquire("p", prio)
            order.append(name)
            await asyncio.sleep(1)
            s.release("p")

        tasks = [asyncio.create_task(waiter(n, p)) for n, p in (("low", 0), ("high", 9), ("mid", 5))]
        await asyncio.sleep(0.1)
        assert s.queued_at("p") == 3
        s.release("p")
        await asyncio.gather(*tasks)
        assert s.in_flight_at("p") == 0
        return order

    assert _run(main()) == ["high", "mid", "low"]


def test_full_queue_sheds_or_evicts_the_least_important() -> None:
    async def main() -> tuple[str, str]:
        s = LoadShedder(SheddingSettings(provider_limit=1, queue_limit=1, max_queue_wait_s=10), LoopClock())
        await s.acquire("p", 5)
        low = asyncio.create_task(s.acquire("p", 1))
        await asyncio.sleep(0)
        with pytest.raises(Shed) as same:
            await s.acquire("p", 1)  # does not outrank the waiter
        high = asyncio.create_task(s.acquire("p", 9))
        await asyncio.sleep(0)
        with pytest.raises(Shed) as evicted:
            await low
        s.release("p")
        await high
        return same.value.reason, evicted.value.reason

    assert _run(main()) == ("queue_full", "evicted")


def test_queue_wait_is_bounded() -> None:
    async def main() -> tuple[str, float]:
        clock = LoopClock()
        s = LoadShedder(SheddingSettings(provider_limit=1, queue_limit=8, max_queue_wait_s=0.5), clock)
        await s.acquire("p", 1)
        t0 = clock.monotonic()
        with pytest.raises(Shed) as exc:
            await s.acquire("p", 1, max_wait_s=0.2)
        assert s.queued_at("p") == 0
        return exc.value.reason, clock.monotonic() - t0

    reason, waited = _run(main())
    assert reason == "queue_timeout" and waited == pytest.approx(0.2)


def test_no_queue_sheds_at_once() -> None:
    async def main() -> str:
        s = LoadShedder(SheddingSettings(provider_limit=1, queue_limit=0), LoopClock())
        await s.acquire("p", 1)
        with pytest.raises(Shed) as exc:
            await s.acquire("p", 9)
        return exc.value.reason

    assert _run(main()) == "queue_full"


def test_queue_depth_is_reported_as_it_changes() -> None:
    async def main() -> list[int]:
        depths: list[int] = []
        s = LoadShedder(
            SheddingSettings(provider_limit=1, queue_limit=4, max_queue_wait_s=10),
            LoopClock(),
            on_queue_depth=depths.append,
        )
        await s.acquire("p", 1)
        await s.acquire("q", 1)  # other providers' free slots never queue
        waiters = [asyncio.create_task(s.acquire("p", 1)) for _ in range(2)]
        await asyncio.sleep(0)
        s.release("p")
        s.release("p")
        await asyncio.gather(*waiters)
        assert s.queued == 0
        return depths

    assert _run(main()) == [1, 2, 1, 0]


@pytest.mark.parametrize(("provider", "limit"), [("small", 2), ("other", 5)])
def test_per_provider_limits_override_the_default(provider: str, limit: int) -> None:
    async def main() -> int:
        s = LoadShedder(SheddingSettings(provider_limit=5, provider_limits={"small": 2}, queue_limit=0), LoopClock())
        admitted = 0
        for _ in range(10):
            try:
                await s.acquire(provider, 1)
                admitted += 1
            except Shed:
                pass
        return admitted

    assert _run(main()) == limit
