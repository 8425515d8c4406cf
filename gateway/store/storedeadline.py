"""A deadline for one call to the state store that does not count the event loop's own lag against the store.

Under a burst the event loop can be busy for tens or hundreds of milliseconds at a time: an answer from Redis
that arrived in a fraction of a millisecond waits in the socket until the loop reads it. A plain timeout then
fires and blames the store. Here, a deadline whose timer fires more than ``lag_s`` late (the loop was behind) is
re-armed instead, up to ``allowance_s`` after the call began; only a deadline that keeps firing on time, or the
allowance running out, cancels the call (``TimeoutError``). With an idle loop a store that does not answer costs
``bound_s + 2 * lag_s`` (``lag_s`` is a tenth of the bound, at least 5 ms); a request never waits for the store
longer than ``allowance_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

GRACES = 2  # on-time expiries that wait one more short step before firing (see LagTimer._expire)


class LagTimer:
    """Calls ``fire`` once ``bound_s`` has passed on a loop that kept up: a late expiry (the loop was behind) is
    re-armed with a fresh bound, an on-time one waits two graces of ``lag_s``, and ``allowance_s`` ends it all."""

    __slots__ = ("_allowance", "_bound", "_due", "_fire", "_graces", "_handle", "_lag", "_loop", "_start", "excused")

    def __init__(
        self, bound_s: float, allowance_s: float, fire: Callable[[], None], *, lag_s: float | None = None
    ) -> None:
        self._bound = bound_s
        self._allowance = max(bound_s, allowance_s)
        self._lag = lag_s if lag_s is not None else max(0.005, bound_s / 10)
        self._fire = fire
        self._graces = 0
        self.excused = 0  # times the deadline was re-armed because the loop was behind

    def start(self) -> LagTimer:
        self._loop = loop = asyncio.get_running_loop()
        self._start = loop.time()
        self._due = self._start + self._bound
        self._handle = loop.call_at(self._due, self._expire)
        return self

    def cancel(self) -> None:
        self._handle.cancel()

    def _expire(self) -> None:
        """The loop runs due timers before it polls for I/O: a timer that fires on time right after a busy spell
        runs before the answer that arrived during that spell is read. So an on-time expiry waits ``lag_s`` more,
        twice (the answer is read in the next poll and its task resumes in the loop turn after that); a late one
        (the loop is behind) gets a fresh bound."""
        now = self._loop.time()
        end = self._start + self._allowance
        if now < end:
            if now - self._due > self._lag:  # the loop was behind: the answer may be waiting unread
                self.excused += 1
                self._graces = 0
                self._rearm(min(now + self._bound, end))
                return
            if self._graces < GRACES:
                self._graces += 1
                self._rearm(min(now + self._lag, end))
                return
        self._fire()

    def _rearm(self, due: float) -> None:
        self._due = due
        self._handle = self._loop.call_at(due, self._expire)


class QueueDeadline:
    """The bound of calls answered in the order they were sent (one connection), with one timer for them all.

    Only the oldest unanswered call can run out of its bound first (the calls after it were sent later, and none
    of them is answered before it), so the timer follows that call: ``head()`` says when it was issued (``None``:
    none is waiting). The timer is not moved when a call is answered; when it expires it looks at the head again,
    and re-arms for a newer head's own deadline, or treats the expiry as :class:`LagTimer` does for that call (lag
    excused, two graces, the allowance), and calls ``fire`` when the head has used up its bound. A call costs one
    clock read instead of a timer of its own. One difference: when an expiry came late (the loop lagged) it is
    re-armed a whole bound on, and a newer head is looked at only then, so its ``fire`` can come up to about one
    bound later than its own :class:`LagTimer` would have; never past the head's allowance."""

    __slots__ = ("_allowance", "_bound", "_due", "_fire", "_graces", "_handle", "_head", "_lag", "_loop", "_start")

    def __init__(
        self,
        bound_s: float,
        allowance_s: float,
        head: Callable[[], float | None],
        fire: Callable[[], None],
        *,
        lag_s: float | None = None,
    ) -> None:
        self._bound = bound_s
        self._allowance = max(bound_s, allowance_s)
        self._lag = lag_s if lag_s is not None else max(0.005, bound_s / 10)
        self._head = head
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._start = self._due = 0.0
        self._graces = 0

    def watch(self, start: float) -> None:
        """A call issued at ``start`` (the loop's time): armed for it unless already armed for an older one."""
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._start, self._due, self._graces = start, start + self._bound, 0
            self._handle = self._loop.call_at(self._due, self._expire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        now = self._loop.time()
        start = self._head()
        if start is None:  # nothing waiting
            self._handle = None
            return
        late = now - self._due > self._lag  # this expiry came late: the loop was behind
        if start != self._start:  # the call it was armed for was answered: the oldest one waiting now
            self._start, self._due, self._graces = start, start + self._bound, 0
            if self._due > now:
                self._rearm(self._due)
                return
        end = self._start + self._allowance
        if now < end:
            if late:  # the answer may be waiting unread (as LagTimer._expire)
                self._graces = 0
                self._rearm(min(now + self._bound, end))
                return
            if self._graces < GRACES:
                self._graces += 1
                self._rearm(min(now + self._lag, end))
                return
        self._handle = None
        self._fire()

    def _rearm(self, due: float) -> None:
        self._due = due
        self._handle = self._loop.call_at(due, self._expire)


class StoreDeadline:
    """``async with StoreDeadline(bound_s, allowance_s):`` like ``asyncio.timeout(bound_s)``, lag excused."""

    __slots__ = ("_cancelling", "_fired", "_task", "_timer")

    def __init__(self, bound_s: float, allowance_s: float, *, lag_s: float | None = None) -> None:
        self._timer = LagTimer(bound_s, allowance_s, self._fire_now, lag_s=lag_s)
        self._fired = False

    @property
    def excused(self) -> int:
        return self._timer.excused

    async def __aenter__(self) -> StoreDeadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StoreDeadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._timer.start()
        return self

    def _fire_now(self) -> None:
        self._fired = True
        self._task.cancel()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        if self._fired and et is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            raise TimeoutError("the state store did not answer in time") from exc
