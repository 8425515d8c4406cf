"""Time, injected.

Nothing in Faultline reads the wall clock directly: every component takes a :class:`Clock`.

* :class:`SystemClock` — real time, for real processes.
* :class:`LoopClock` — time read from the running asyncio loop. Under :class:`VirtualTimeLoop` the loop
  fast-forwards over idle periods, so a ten-minute scenario replays in seconds, byte for byte.
* :class:`FakeClock` — advanced by hand; for table tests of the pure policy cores.

``now()`` is seconds since the Unix epoch (timestamps in logs and the request log); ``monotonic()`` is for
durations and deadlines; ``sleep()`` is the only way code waits.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LoopClock:
    """Time of the running event loop, offset to an epoch.

    Under a :class:`VirtualTimeLoop` that time is virtual; ``asyncio.sleep`` and ``asyncio.timeout`` follow it.
    """

    def __init__(self, epoch: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._epoch = epoch

    def now(self) -> float:
        return self._epoch + asyncio.get_running_loop().time()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._t += max(0.0, seconds)


class _VirtualSelector(selectors.SelectSelector):
    """Polls real descriptors without blocking; when none is ready, jumps virtual time to the next timer."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: the loop is idle with nothing scheduled (a deadlock)")
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual and skips idle time.

    Ready callbacks run in FIFO order exactly as in a normal loop; only waiting is free. Code run on it must not
    block on real I/O (in-process transports and fakeredis only).
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual_now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
