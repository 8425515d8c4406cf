"""Time limits on the reads of a stream, with one timer per stream instead of one per read.

``asyncio.timeout`` around each read of a stream schedules a timer, and cancels it, for every chunk. A stream's
reads follow one another, so :class:`ReadLimit` keeps one timer: a read that starts records when it must end; a
timer that fires while a read is waiting whose own end is later is set again for that end, and one that fires
while no read waits is dropped (the next read sets a new one). A read runs out of time at the same event-loop time
as under ``asyncio.timeout``, and ends the same way: its task is cancelled, and :meth:`ReadLimit.end` tells that
cancellation from any other, as ``asyncio.Timeout`` does.
"""

from __future__ import annotations

import asyncio


class ReadLimit:
    __slots__ = ("_cancelling", "_due", "_expired", "_handle", "_loop", "_task")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._due = 0.0
        self._cancelling = 0
        self._expired = False

    def time(self) -> float:
        """The event loop's time (what ``due`` is counted in)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def begin(self, due: float) -> None:
        """A read starts in the current task; it must end by ``due`` (event-loop time)."""
        task = asyncio.current_task()
        assert task is not None, "a stream is read from a task"
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._task, self._due, self._cancelling, self._expired = task, due, task.cancelling(), False
        handle = self._handle
        if handle is None or handle.when() > due:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(due, self._fire)

    def end(self) -> bool:
        """The read is over (whatever its result). True when its time ran out: the ``CancelledError`` it ended with
        is the limit's own, to be turned into a timeout."""
        task, self._task = self._task, None
        if not self._expired or task is None:
            return False
        self._expired = False
        return task.uncancel() <= self._cancelling

    def close(self) -> None:
        """No more reads: drop the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._task = None

    def _fire(self) -> None:
        handle, self._handle = self._handle, None
        task = self._task
        if task is None or handle is None:  # no read waits: the next one sets the timer again
            return
        if self._due > handle.when():  # the read waiting started after this timer was set: wait for its end
            assert self._loop is not None
            self._handle = self._loop.call_at(self._due, self._fire)
            return
        self._expired = True
        task.cancel()
