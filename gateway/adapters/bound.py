"""The time limits of one upstream call, kept by one event-loop timer.

An attempt waits for the response head within ``first_byte_s``, then for a JSON body within another
``first_byte_s`` (or for an error body within ``idle_s``), and all of it ends at the request deadline. Each of
those was its own ``asyncio.timeout`` (a timer handle, a context manager and two coroutines each): three per JSON
request. :class:`Bound` arms one timer for the earliest of the current wait's limit and the deadline. A wait
whose limit is later than the timer (the body after the head) does not re-arm it: if the timer runs before the
wait is over, it re-arms itself for the limit then in force, so the timer fires exactly when one of those
``asyncio.timeout`` contexts would have. A limit earlier than the timer (an error body's ``idle_s``) re-arms it
at once.

As ``asyncio.timeout`` does, the timer cancels the task; the waits that catch the ``CancelledError`` ask
:meth:`Bound.expired` whether the timer caused it (and not another cancellation, which goes on). When both the
limit and the deadline are due at once, the deadline is the one that ended the wait, as the outer of the two
contexts was.
"""

from __future__ import annotations

import asyncio

from gateway.adapters.upstreamerrors import DeadlineReached


class Bound:
    """One timer for the waits of one call: :meth:`limit` starts a wait, :meth:`close` (or leaving the ``with``
    block) ends the call."""

    __slots__ = ("_cancelling", "_deadline", "_handle", "_limit", "_loop", "_pending", "_task", "_when")

    def __init__(self, limit_s: float, deadline: float | None) -> None:
        """The first wait's limit, ``limit_s`` from now; ``deadline``: event-loop time, or None (not bounded)."""
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline = deadline
        self._limit = limit = loop.time() + limit_s
        self._pending = False  # the timer cancelled the task and the wait has not claimed it yet
        self._when = when = limit if deadline is None or limit < deadline else deadline  # _due(), inline
        self._handle: asyncio.TimerHandle | None = loop.call_at(when, self._fire)

    def _due(self) -> float:
        d = self._deadline
        return self._limit if d is None or self._limit < d else d

    def _arm(self) -> None:
        self._when = when = self._due()
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        if self._due() > self._when:  # a later limit started since the timer was armed
            self._arm()
            return
        self._handle = None
        self._pending = True
        self._task.cancel()

    def limit(self, seconds: float) -> None:
        """A new wait, within ``seconds`` from now (and the deadline)."""
        self._limit = limit = self._loop.time() + seconds
        handle, d = self._handle, self._deadline
        if handle is not None and (limit if d is None or limit < d else d) < self._when:  # _due(), inline
            handle.cancel()
            self._arm()

    def expired(self) -> bool:
        """On a ``CancelledError`` in a wait: True when this timer caused it (the wait's limit or the deadline
        ended it), False for any other cancellation, which must go on."""
        if not self._pending:
            return False
        self._pending = False
        return self._task.uncancel() <= self._cancelling

    def deadline_error(self, provider: str) -> DeadlineReached | None:
        """After :meth:`expired`: the error when the deadline, not the wait's limit, ended the wait."""
        if self._deadline is not None and self._when >= self._deadline:
            return DeadlineReached(provider, "no answer before the request deadline")
        return None

    def __enter__(self) -> Bound:
        return self

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:  # close(), inline
            self._handle.cancel()
            self._handle = None
        if self._pending:
            self._pending = False
            self._task.uncancel()

    def close(self) -> None:
        """The call is over: the timer goes (a cancellation it caused and no wait claimed is taken back)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._pending:
            self._pending = False
            self._task.uncancel()
