"""The vLLM capacity model: at most ``max_num_seqs`` requests decode at once, the rest wait FIFO in a queue
bounded by ``max_waiting_queue_length`` (beyond it requests are refused), and latency grows with the batch:
``factor = 1 + (time_factor_under_load - 1) * (running - 1) / (max_num_seqs - 1)``, reaching the configured
factor when the batch is full (llm-d-inference-sim's ``time-factor-under-load``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from simulators.profile import Capacity


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
        would_wait = self.running >= self.max_num_seqs or bool(self._waiting)
        return would_wait and len(self._waiting) >= self.max_queue

    async def acquire(self) -> None:
        if self.max_num_seqs is None or (self.running < self.max_num_seqs and not self._waiting):
            self.running += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            else:
                self._waiting.remove(fut)
            raise

    def release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # hand the slot over; ``running`` is unchanged
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
