"""One deadline for calls answered in order, in virtual time: it fires when the oldest unanswered call has used
up its bound, as that call's own deadline would (lag excused, two graces, the allowance), and not otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.clock import VirtualTimeLoop, run_virtual
from gateway.store.storedeadline import QueueDeadline


def busy(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    loop.advance(seconds)


async def fired(
    calls: Sequence[tuple[float, float | None]], *, spells: Sequence[tuple[float, float]] = ()
) -> list[float]:
    """Calls (issued at, answered at or None) in order, under busy ``spells`` (at, length): when the deadline
    fired (bound 50 ms, allowance 500 ms)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    answered: set[int] = set()
    out: list[float] = []

    def head() -> float | None:
        for i, (at, _) in enumerate(calls):
            if i not in answered and t0 + at <= loop.time():
                return t0 + at
        return None

    deadline = QueueDeadline(0.05, 0.5, head, lambda: out.append(round(loop.time() - t0, 4)))
    for i, (at, answer) in enumerate(calls):
        loop.call_at(t0 + at, deadline.watch, t0 + at)
        if answer is not None:
            loop.call_at(t0 + answer, answered.add, i)
    for at, length in spells:
        loop.call_at(t0 + at, busy, length)
    await asyncio.sleep(2.0)
    return out


@pytest.mark.parametrize(
    ("calls", "spells", "expected"),
    [
        ([(0.0, 0.01)], [], []),
        ([(0.0, None)], [], [0.06]),  # an idle loop: the bound, plus two 5 ms graces
        ([(0.0, 0.01), (0.005, None)], [], [0.065]),  # the next call's own bound, not the first one's
        ([(0.0, 0.049), (0.04, None)], [], [0.1]),  # armed for the first; re-armed for the second's deadline
        ([(0.0, 0.052), (0.002, None)], [], [0.065]),  # answered during its graces: no fresh bound for the next
        ([(0.0, 0.03), (0.02, 0.06), (0.05, 0.09), (0.08, 0.12)], [], []),  # each answered within its bound
        ([(0.0, None)], [(0.01, 0.1)], [0.17]),  # lag excused once, then the store still does not answer
        ([(0.0, None)], [(0.01, 0.1), (0.12, 0.1), (0.23, 0.1), (0.34, 0.2)], [0.54]),  # the allowance ends it
        ([(0.0, 0.001)], [(0.0005, 0.2)], []),  # answered during a busy spell: nothing fires
    ],
)
def test_queue_deadline(
    calls: list[tuple[float, float | None]], spells: list[tuple[float, float]], expected: list[float]
) -> None:
    assert run_virtual(fired(calls, spells=spells)) == expected
