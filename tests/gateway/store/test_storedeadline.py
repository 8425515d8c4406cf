"""The store deadline in virtual time: the bound on an idle loop, lag excused, the allowance as the last word.

A spell of the event loop being busy is a callback that advances the virtual clock without yielding, as a CPU-bound
stretch of real work would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.clock import VirtualTimeLoop, run_virtual
from gateway.store.storedeadline import StoreDeadline


def busy(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    loop.advance(seconds)


async def timed(answer_after: float, *, spells: Sequence[tuple[float, float]] = ()) -> tuple[str, float, int]:
    """A call answered after ``answer_after`` s, under busy ``spells`` (at, length): outcome, elapsed, excused."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for at, length in spells:
        loop.call_at(start + at, busy, length)
    deadline = StoreDeadline(0.05, 0.5)
    try:
        async with deadline:
            await asyncio.sleep(answer_after)
        outcome = "answered"
    except TimeoutError:
        outcome = "timeout"
    return outcome, round(loop.time() - start, 4), deadline.excused


@pytest.mark.parametrize(
    ("answer_after", "spells", "expected"),
    [
        (0.01, [], ("answered", 0.01, 0)),
        (10.0, [], ("timeout", 0.06, 0)),  # an idle loop: the bound, plus two 5 ms graces
        (0.001, [(0.0005, 0.2)], ("answered", 0.2005, 1)),  # answered during the spell: excused, read after it
        (0.12, [(0.01, 0.1)], ("answered", 0.12, 1)),  # the deadline fired 60 ms late: a fresh bound
        (10.0, [(0.01, 0.1)], ("timeout", 0.17, 1)),  # lag excused once, then the store still does not answer
        (10.0, [(0.01, 0.1), (0.12, 0.1), (0.23, 0.1), (0.34, 0.2)], ("timeout", 0.54, 3)),  # the allowance ends it
    ],
)
def test_deadline(answer_after: float, spells: list[tuple[float, float]], expected: tuple[str, float, int]) -> None:
    assert run_virtual(timed(answer_after, spells=spells)) == expected


def test_an_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    async def main() -> str:
        async def inner() -> None:
            async with StoreDeadline(0.05, 0.5):
                await asyncio.sleep(10)

        task = asyncio.get_running_loop().create_task(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert run_virtual(main()) == "cancelled"
