"""The limiter the gateway calls: Redis first, the state-store failure policy at the edge.

* Redis healthy: every check and settle is one EVALSHA, on one connection in the order this process issues them
  (gateway/quota/mux.py), bounded by the state store's one bound (``state.timeout_s``, the event loop's own lag
  not counted against Redis: gateway/store/). :meth:`QuotaLimiter.release` writes a settle without waiting for
  its answer: a finished request costs no round trip.
* A call that fails gets the policy's answer; the store itself declares an outage after
  ``state.outage_after_failures`` consecutive failed round trips and probes Redis on its own task until it
  answers (gateway/store/statestore.py). While it is down, requests go straight to the policy's answer. Policy
  ``open``: an in-process :class:`~gateway.quota.algorithm.LocalLimiter` enforcing this replica's share of each limit
  (``limit // replicas``, at least 1), its day counter starting from this replica's share of the day's use last
  seen on Redis (so an outage does not hand out a fresh daily budget); its windows are cleared when Redis is back.
  Policy ``closed``: 503 ``service_unavailable``.
* A settle that fails (or comes during an outage, or right after a failed round trip: a request waits for a
  failing store once at most) is logged and counted, never raised, and kept in a bounded
  queue (``quota.max_unsettled``); after the next successful call to the store a background task replays the
  queue. Settling is idempotent per reservation, so a settle that did reach Redis before its reply was lost is
  not charged twice on replay. Until then the reservation (the estimate) and its in-flight lease stand; a settle
  dropped from a full queue, or replayed after its lease expired, leaves the estimate charged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from redis.exceptions import RedisError

from gateway.clock import Clock
from gateway.errors import Unavailable
from gateway.quota.algorithm import DAY_MS, Decision, LocalLimiter, day_index
from gateway.quota.redis_store import RedisLimiter
from gateway.quota.slots import Slots
from gateway.settings.quota import Limits, QuotaSettings
from gateway.store.statestore import StateStore

Backend = Literal["redis", "local"]


class QuotaEvents(Protocol):
    """What the quota stage reports; observability implements it (see :class:`QuotaCounters`)."""

    def decision(self, consumer: str, kind: str, backend: str) -> None: ...

    def settled(self, consumer: str, delta: int | None) -> None: ...

    def store_error(self, op: str, error: str) -> None: ...


@dataclass(slots=True)
class QuotaCounters:
    """A plain :class:`QuotaEvents` (and store events) that counts: decisions by kind/backend, outages,
    recoveries, errors."""

    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    settles: int = 0
    settles_lost: int = 0  # applied nothing: already settled, lease expired, or dropped from a full replay queue
    outages: int = 0
    recoveries: int = 0
    false_outages: int = 0
    lag_excused: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def decision(self, consumer: str, kind: str, backend: str) -> None:
        self.decisions[kind, backend] = self.decisions.get((kind, backend), 0) + 1

    def settled(self, consumer: str, delta: int | None) -> None:
        if delta is None:
            self.settles_lost += 1
        else:
            self.settles += 1

    def store_transition(self, healthy: bool, reason: str) -> None:
        if healthy:
            self.recoveries += 1
        else:
            self.outages += 1

    def store_false_outage(self) -> None:
        self.false_outages += 1

    def store_lag_excused(self, op: str) -> None:
        self.lag_excused += 1

    def store_error(self, op: str, error: str) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1


class Reservation(NamedTuple):
    """An admitted request's hold on its consumer's limits, until settled. A named tuple: one per request."""

    consumer: str
    handle: str
    day: int
    backend: Backend


_tuple_new = tuple.__new__


def replica_share(limits: Limits, replicas: int) -> Limits:
    if replicas <= 1:
        return limits

    def part(v: int | None) -> int | None:
        return None if v is None else max(1, v // replicas)

    return Limits(
        rpm=part(limits.rpm),
        tpm=part(limits.tpm),
        tpd=part(limits.tpd),
        max_concurrency=part(limits.max_concurrency),
    )


class QuotaLimiter:
    def __init__(self, store: StateStore, settings: QuotaSettings, *, clock: Clock, events: QuotaEvents) -> None:
        self._lease_ms = lease_ms = int(settings.lease_ttl_s * 1000)
        self._settings = settings
        self._clock = clock
        self._events = events
        self._store = store
        self._remote = RedisLimiter(store.redis, prefix=settings.key_prefix, lease_ms=lease_ms, store=store)
        self._local = LocalLimiter(lease_ms)
        self._slots = Slots(settings.max_store_calls)
        self._unsettled: deque[tuple[Reservation, int]] = deque()
        self._day_seen: dict[str, tuple[int, int]] = {}  # consumer -> (UTC day, tokens used) last seen on Redis
        self._replay: asyncio.Task[None] | None = None
        store.on_recovery(self._recovered)

    @property
    def healthy(self) -> bool:
        return self._store.healthy

    async def start(self) -> None:
        """Load the scripts; an unreachable store at start is an outage like any other, not a crash."""
        try:
            async with asyncio.timeout(max(self._store.settings.timeout_s, 1.0)):
                await self._remote.load()
        except (RedisError, OSError, TimeoutError) as exc:
            self._events.store_error("load", type(exc).__name__)
            self._store.outage(f"load: {type(exc).__name__}")

    async def stop(self) -> None:
        """Stop a replay in progress; what is still queued is reported lost (its estimates stand)."""
        if self._replay is not None:
            self._replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay
            self._replay = None
        while self._unsettled:
            r, _ = self._unsettled.popleft()
            self._events.settled(r.consumer, None)
        await self._remote.aclose()
        await self._store.stop()

    def _recovered(self) -> None:
        """Redis is back: the local windows of the outage are dropped (Redis counts again), queued settles go."""
        self._local = LocalLimiter(self._lease_ms)
        self._replay_soon()

    @property
    def unsettled(self) -> int:
        """Settles waiting for the store to come back."""
        return len(self._unsettled)

    async def replayed(self) -> None:
        """Wait until the replay of queued settles in progress, if any, has ended (the queue emptied, or the store
        failed again and what is left waits for the next successful call)."""
        if self._replay is not None:
            await asyncio.shield(self._replay)

    def now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    async def check(self, consumer: str, tokens: int, limits: Limits) -> tuple[Decision, Reservation | None]:
        decision: Decision | None = None
        backend: Backend = "redis"
        store = self._store
        if store.usable:  # up, and no call of this request failed
            slots = self._slots
            if not slots.take_now():  # a burst queues here, not inside the store's bound
                await slots.take()
            try:
                if store.usable:
                    now_ms = self.now_ms()
                    try:  # awaited here, not in a coroutine of its own: one frame fewer per check
                        decision = await self._remote.check(consumer, now_ms, tokens, limits)
                    except (RedisError, OSError, TimeoutError) as exc:
                        self._events.store_error("check", type(exc).__name__)
                        store.failed_here()
                    else:
                        self._replay_soon()
            finally:
                slots.give()
        if decision is not None:
            if limits.tpd is not None:
                self._day_seen[consumer] = (now_ms // DAY_MS, decision.day_used)  # day_index
        else:
            if self._settings.failure_policy == "closed":
                self._events.decision(consumer, "unavailable", "none")
                raise Unavailable(
                    "The rate-limit state store is unavailable; the request was not attempted. Please retry shortly.",
                    headers={"retry-after": str(max(1, round(store.settings.probe_interval_s)))},
                )
            backend = "local"
            now_ms = self.now_ms()
            replicas = self._settings.replicas
            seen = self._day_seen.pop(consumer, None)
            if seen is not None and seen[0] == day_index(now_ms):
                self._local.seed_day(consumer, seen[0], -(-seen[1] // replicas))
            decision = self._local.check(consumer, now_ms, tokens, replica_share(limits, replicas))
        self._events.decision(consumer, decision.kind, backend)
        if not decision.admitted or decision.handle is None:
            return decision, None
        # a Reservation by tuple.__new__ (every field given): no frame of the named tuple's own __new__
        return decision, _tuple_new(Reservation, (consumer, decision.handle, now_ms // DAY_MS, backend))

    async def settle(self, r: Reservation, actual: int) -> int | None:
        """Charge ``actual`` tokens instead of the reservation; release the lease. Never raises. Returns the
        token delta applied, or ``None`` when nothing was applied now (already settled, lease expired, or queued
        for replay because the store is unreachable)."""
        if r.backend == "local":
            delta = self._local.settle(r.consumer, r.handle, actual, r.day)
        elif not (self._store.clear and self._store.usable):  # no second wait for this request
            self._defer(r, actual)
            return None
        else:
            try:
                delta = await self._remote_settle(r, actual)
            except (RedisError, OSError, TimeoutError) as exc:
                self._events.store_error("settle", type(exc).__name__)
                self._defer(r, actual)
                return None
            self._replay_soon()
        self._events.settled(r.consumer, delta)
        return delta

    def release(self, r: Reservation, actual: int, answered: Callable[[int | None], None] | None = None) -> None:
        """:meth:`settle` without waiting for the store's answer: the settle is written to the store before this
        returns (when connected; else as soon as the connection is), ahead of every call this process makes after
        it, so this process's next check sees the lease released. ``answered`` gets the delta applied (``None``:
        nothing applied now, or queued for replay), at once when that is known now; a failure is counted and
        queued as in :meth:`settle`."""
        if r.backend == "local":
            delta = self._local.settle(r.consumer, r.handle, actual, r.day)
            self._events.settled(r.consumer, delta)
            if answered is not None:
                answered(delta)
            return
        if not self._store.clear:  # down, or its last round trip failed
            self._defer(r, actual)
            if answered is not None:
                answered(None)
            return

        def settled(delta: int | None, exc: BaseException | None) -> None:
            if exc is None:
                self._events.settled(r.consumer, delta)
                self._replay_soon()
            else:
                self._events.store_error("settle", type(exc).__name__)
                self._defer(r, actual)
            if answered is not None:
                answered(delta)

        self._remote.settle_soon(r.consumer, r.handle, actual, r.day, settled)

    async def _remote_settle(self, r: Reservation, actual: int) -> int | None:
        async with self._slots:
            return await self._remote.settle(r.consumer, r.handle, actual, r.day)

    def _defer(self, r: Reservation, actual: int) -> None:
        self._unsettled.append((r, actual))
        if len(self._unsettled) > self._settings.max_unsettled:
            lost, _ = self._unsettled.popleft()
            self._events.settled(lost.consumer, None)

    def _replay_soon(self) -> None:
        """After a successful store call: replay queued settles in the background, one at a time."""
        if self._unsettled and (self._replay is None or self._replay.done()):
            self._replay = asyncio.get_running_loop().create_task(self._replay_unsettled())

    async def _replay_unsettled(self) -> None:
        while self._unsettled and self._store.healthy:
            r, actual = self._unsettled.popleft()
            try:
                delta = await self._remote_settle(r, actual)
            except (RedisError, OSError, TimeoutError) as exc:
                self._unsettled.appendleft((r, actual))
                self._events.store_error("settle", type(exc).__name__)
                return  # the next successful call starts another replay
            self._events.settled(r.consumer, delta)
