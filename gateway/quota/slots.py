"""How many quota calls to the state store may be in flight at once (``quota.max_store_calls``).

:class:`Slots` keeps :class:`asyncio.Semaphore`'s contract (at most ``n`` holders; the others wait, and are served
in the order they came; a waiter cancelled after a slot was handed to it passes the slot on), with a plain call
instead of two coroutines (``__aenter__``, ``acquire``) when a slot is free, which is every check but those of a
burst.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any


class Slots:
    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and no one waits for one; ``False`` (nothing taken) otherwise."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting behind those who came first."""
        if self.take_now():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            else:  # handed a slot as it was cancelled: the next waiter gets it
                self.give()
            raise

    def give(self) -> None:
        """Give a slot back: to the first waiter, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.take()

    async def __aexit__(self, *exc: Any) -> None:
        self.give()
