"""Slots: at most n holders, waiters served in the order they came, a cancelled waiter's slot passed on."""

from __future__ import annotations

import asyncio

import pytest

from gateway.quota.slots import Slots


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_free_slot_is_taken_without_waiting_and_given_back() -> None:
    slots = Slots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()  # both held
    slots.give()
    assert slots.take_now()


async def test_waiters_are_served_in_the_order_they_came_and_no_one_jumps_the_queue() -> None:
    slots = Slots(1)
    assert slots.take_now()
    order: list[int] = []

    async def holder(i: int) -> None:
        await slots.take()
        order.append(i)
        await _turns(2)
        slots.give()

    tasks = [asyncio.create_task(holder(i)) for i in range(3)]
    await _turns()
    assert order == []  # the first slot is still held
    slots.give()
    assert not slots.take_now()  # handed to the first waiter, not free for a newcomer
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert slots.take_now() and not slots.take_now()  # one slot, free again


async def test_a_cancelled_waiter_leaves_the_queue_and_one_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    assert slots.take_now()
    gone = asyncio.create_task(slots.take())
    handed = asyncio.create_task(slots.take())
    last = asyncio.create_task(slots.take())
    await _turns()
    gone.cancel()  # still waiting: it leaves the queue
    await _turns()
    slots.give()  # to ``handed`` ...
    handed.cancel()  # ... cancelled before it ran: the slot goes on to ``last``
    with pytest.raises(asyncio.CancelledError):
        await handed
    await last
    assert gone.cancelled()
    assert not slots.take_now()  # ``last`` holds the one slot
    slots.give()
    assert slots.take_now()


async def test_as_a_context_manager() -> None:
    slots = Slots(1)
    async with slots:
        assert not slots.take_now()
    assert slots.take_now()
