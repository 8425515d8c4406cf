from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.observability.nexttick import NextTick


async def test_the_work_of_one_tick_runs_in_order_at_the_start_of_the_next() -> None:
    tick = NextTick(asyncio.get_running_loop())
    ran: list[str] = []
    tick(lambda: ran.append("a"))
    tick(lambda: ran.append("b"))
    assert ran == []
    await asyncio.sleep(0)
    assert ran == ["a", "b"]

    def again() -> None:  # work asked for while the tick's work runs: the tick after
        ran.append("c")
        tick(lambda: ran.append("d"))

    tick(again)
    await asyncio.sleep(0)
    assert ran == ["a", "b", "c"]
    await asyncio.sleep(0)
    assert ran == ["a", "b", "c", "d"]


async def test_a_failing_piece_keeps_none_of_the_others_from_running() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        tick = NextTick(loop)
        ran: list[str] = []

        def fail() -> None:
            raise ValueError("boom")

        tick(fail)
        tick(lambda: ran.append("after"))
        await asyncio.sleep(0)
        assert ran == ["after"]
        assert [type(c["exception"]) for c in reported] == [ValueError]
    finally:
        loop.set_exception_handler(None)


def test_a_closed_loop_raises_and_keeps_nothing() -> None:
    loop = asyncio.new_event_loop()
    tick = NextTick(loop)
    loop.close()
    with pytest.raises(RuntimeError):
        tick(lambda: None)
    with pytest.raises(RuntimeError):  # nothing kept: the next piece tries to schedule again
        tick(lambda: None)
