"""The vLLM capacity model: at most ``max_num_seqs`` requests decode at once, the rest wait FIFO in a queue
bounded by ``max_waiting_queue_length`` (beyond it requests are refused), and latency grows with the batch:
``factor = 1 + (time_factor_under_load - 1) * (running - 1) / (max_num_seqs - 1)``, reaching the configured
factor when the batch is full (llm-d-inference-sim's ``time-factor-under-load``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from simulators.profile import Capacity


class Ticket:
    """One request's claim on the scheduler: a slot now (``fut`` None) or a place in the queue."""

    __slots__ = ("closed", "fut", "sched")

    def __init__(self, sched: Scheduler, fut: asyncio.Future[None] | None) -> None:
        self.sched, self.fut, self.closed = sched, fut, False

    async def wait(self) -> None:
        """Until the slot is ours (a cancelled wait leaves the queue when :meth:`leave` runs)."""
        if self.fut is not None:
            await self.fut

    def leave(self) -> None:
        """Give the slot back, or the place in the queue; idempotent, safe before :meth:`wait` ever ran."""
        if self.closed:
            return
        self.closed = True
        fut = self.fut
        if fut is None or (fut.done() and not fut.cancelled()):
            self.sched.release()  # ours, or handed over just as we gave up
        else:
            fut.cancel()
            if fut in self.sched._waiting:
                self.sched._waiting.remove(fut)


class Scheduler:
    def __init__(self, spec: Capacity) -> None:
        self.max_num_seqs = spec.max_num_seqs
        self.max_queue = spec.max_waiting_queue_length
        self.time_factor = spec.time_factor_under_load
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def must_refuse(self) -> bool:
        """True when a new request would have to wait and the waiting queue is full."""
        if self.max_num_seqs is None or self.max_queue is None:
            return False
        return self.must_wait() and len(self._waiting) >= self.max_queue

    def must_wait(self) -> bool:
        """True when a new request would have to queue for a slot."""
        return self.max_num_seqs is not None and (self.running >= self.max_num_seqs or bool(self._waiting))

    def admit(self) -> Ticket:
        """Take a slot or a place in the queue, now (synchronously, so admission and refusal cannot race)."""
        m = self.max_num_seqs
        if m is None or (self.running < m and not self._waiting):
            self.running += 1
            return Ticket(self, None)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return Ticket(self, fut)

    def release(self) -> None:
        """A slot is free: hand it to the first live waiter (``running`` unchanged), else count it down."""
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.running -= 1

    def load_factor(self) -> float:
        m = self.max_num_seqs
        if m is None or m <= 1 or self.time_factor <= 1.0 or self.running <= 1:
            return 1.0
        return min(self.time_factor, 1.0 + (self.time_factor - 1.0) * (self.running - 1) / (m - 1))

    def kv_cache_usage(self) -> float:
        """Share of sequence slots in use, standing in for vLLM's KV-cache usage (0-1)."""
        if self.max_num_seqs is None:
            return 0.0
        return min(1.0, self.running / self.max_num_seqs)
