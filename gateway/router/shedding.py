"""Backpressure and load shedding.

Two gates, both answering fast (no I/O, no wait when full):

* **Global in-flight limit** (``global_limit`` requests in the router). A consumer of priority ``p`` (0-9, higher
  is more important) is admitted only while ``in_flight < global_limit - floor(global_limit * priority_reserve *
  (9 - p) / 9)``: the lowest priorities hit their ceiling first, priority 9 may use all of it.
* **Per-provider concurrency** (``provider_limit``, or ``provider_limits[name]``) with a bounded wait queue
  (``queue_limit`` waiters, each waiting at most ``max_queue_wait_s`` and never past the request deadline).
  A freed slot goes to the most important waiter (FIFO within a priority). When the queue is full a newcomer
  evicts the least important waiter if it outranks it, else it is shed.

Shed requests get 503 + ``Retry-After`` (``retry_after_s``). The limits are static: an adaptive limit (AIMD on
observed latency) was left out on purpose — the breaker and the upstream 429s already react to a slow provider,
and a static limit keeps the behaviour predictable in experiments.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.settings.router import SheddingSettings

MAX_PRIORITY = 9


class Shed(Exception):
    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason  # global_limit | queue_full | queue_timeout | evicted
        self.retry_after_s = retry_after_s


def global_ceiling(limit: int, reserve: float, priority: int) -> int:
    """How many requests may be in flight when one of ``priority`` arrives. Pure."""
    p = min(max(priority, 0), MAX_PRIORITY)
    return limit - int(limit * reserve * (MAX_PRIORITY - p) / MAX_PRIORITY)


def _ceilings(s: SheddingSettings) -> tuple[int, ...]:
    return tuple(global_ceiling(s.global_limit, s.priority_reserve, p) for p in range(MAX_PRIORITY + 1))


@dataclass(slots=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Pool:
    limit: int
    in_flight: int = 0
    waiters: list[_Waiter] = field(default_factory=list)


class LoadShedder:
    def __init__(
        self, settings: SheddingSettings, clock: Clock, *, on_queue_depth: Callable[[int], None] | None = None
    ) -> None:
        self._s = settings
        self._clock = clock
        self._on_queue_depth = on_queue_depth
        self.queued = 0  # waiters over all providers
        self.in_flight = 0
        self._pools: dict[str, _Pool] = {}
        self._seq = itertools.count()
        self._ceilings = _ceilings(settings)

    def reconfigure(self, settings: SheddingSettings) -> None:
        """New limits for the requests to come (a reload: gateway/router/carry.py); those in flight and waiting
        keep their places. A provider whose limit rose hands its new free slots to its waiters at once."""
        self._s = settings
        self._ceilings = _ceilings(settings)
        for name, pool in self._pools.items():
            pool.limit = settings.provider_limits.get(name, settings.provider_limit)
            while pool.waiters and pool.in_flight < pool.limit:
                best = min(pool.waiters, key=lambda w: (-w.priority, w.seq))
                self._dequeue(pool, best)
                if not best.future.done():
                    pool.in_flight += 1
                    best.future.set_result(None)

    # -- global gate ---------------------------------------------------------------------------------------
    def enter(self, priority: int) -> None:
        """Admit a request into the router or raise :class:`Shed`. Pair with :meth:`leave`."""
        if self.in_flight >= self._ceilings[min(max(priority, 0), MAX_PRIORITY)]:
            raise Shed("global_limit", self._s.retry_after_s)
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    # -- per-provider gate ---------------------------------------------------------------------------------
    def pool(self, provider: str) -> _Pool:
        p = self._pools.get(provider)
        if p is None:
            limit = self._s.provider_limits.get(provider, self._s.provider_limit)
            p = self._pools[provider] = _Pool(limit)
        return p

    def in_flight_at(self, provider: str) -> int:
        return self.pool(provider).in_flight

    def queued_at(self, provider: str) -> int:
        return len(self.pool(provider).waiters)

    def try_acquire(self, provider: str) -> bool:
        """Take a free slot at ``provider`` when nobody waits for one (then pair with :meth:`release`)."""
        pool = self._pools.get(provider) or self.pool(provider)
        if pool.in_flight < pool.limit and not pool.waiters:
            pool.in_flight += 1
            return True
        return False

    async def acquire(self, provider: str, priority: int, *, max_wait_s: float | None = None) -> None:
        """Take a concurrency slot at ``provider`` (waiting in its queue if needed) or raise :class:`Shed`.
        Pair with :meth:`release`."""
        if self.try_acquire(provider):
            return
        pool = self.pool(provider)
        wait = self._s.max_queue_wait_s if max_wait_s is None else min(max_wait_s, self._s.max_queue_wait_s)
        if self._s.queue_limit == 0 or wait <= 0:
            raise Shed("queue_full", self._s.retry_after_s)
        if len(pool.waiters) >= self._s.queue_limit:
            weakest = max(pool.waiters, key=lambda w: (-w.priority, w.seq))
            if weakest.priority >= priority:
                raise Shed("queue_full", self._s.retry_after_s)
            self._dequeue(pool, weakest)
            weakest.future.set_exception(Shed("evicted", self._s.retry_after_s))
        me = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future())
        self._enqueue(pool, me)
        timer = asyncio.ensure_future(self._clock.sleep(wait))
        try:
            await asyncio.wait((me.future, timer), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._abandon(provider, me)
            raise
        finally:
            timer.cancel()
        if not me.future.done():
            self._dequeue(pool, me)
            me.future.cancel()
            raise Shed("queue_timeout", self._s.retry_after_s)
        me.future.result()  # raises Shed("evicted")

    def release(self, provider: str) -> None:
        pool = self._pools.get(provider) or self.pool(provider)
        while pool.waiters:
            best = min(pool.waiters, key=lambda w: (-w.priority, w.seq))
            self._dequeue(pool, best)
            if not best.future.done():
                best.future.set_result(None)  # the slot passes on; in_flight unchanged
                return
        pool.in_flight -= 1

    def _enqueue(self, pool: _Pool, w: _Waiter) -> None:
        pool.waiters.append(w)
        self.queued += 1
        if self._on_queue_depth is not None:
            self._on_queue_depth(self.queued)

    def _dequeue(self, pool: _Pool, w: _Waiter) -> None:
        pool.waiters.remove(w)
        self.queued -= 1
        if self._on_queue_depth is not None:
            self._on_queue_depth(self.queued)

    def _abandon(self, provider: str, me: _Waiter) -> None:
        pool = self.pool(provider)
        if me in pool.waiters:
            self._dequeue(pool, me)
            me.future.cancel()
        elif me.future.done() and not me.future.cancelled() and me.future.exception() is None:
            self.release(provider)  # the slot was handed over just as the waiter went away
