"""Work deferred to the next event-loop tick, shared: the first piece asked for during a tick schedules one
callback, which runs every piece asked for meanwhile, in order, at the start of the next tick.

The request's log line and its request-log record are both written this way (gateway/observability/logs.py,
gateway/observability/requestlog.py): one callback a tick for both, and one write of each file for all the
requests that finished in that tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class NextTick:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        """Run ``work`` at the start of the next tick. Raises ``RuntimeError`` (and keeps nothing) when the loop
        is closed."""
        due = self._due
        due.append(work)
        if len(due) == 1:
            try:
                self._loop.call_soon(self._run)
            except RuntimeError:
                self._due = []
                raise

    def _run(self) -> None:
        due, self._due = self._due, []
        for work in due:
            try:
                work()
            except Exception as exc:  # one piece failing keeps none of the others from running
                self._loop.call_exception_handler({"message": "deferred work failed", "exception": exc})
