"""The state store as the gateway uses it: the Redis client, one bound for every call, health and probing.

Every call on a request's path goes through :meth:`StateStore.bounded` (or :meth:`StateStore.call`): the call is
bounded by ``state.timeout_s`` with the event loop's own lag excused (gateway/store/storedeadline.py), and its outcome
feeds the store's health (gateway/store/health.py). While the store is down, callers ask :attr:`healthy` and do
not call it at all; a probe task, off the request path, PINGs it at once and then every
``state.probe_interval_s`` and ends the outage at the first answer. Listeners registered with
:meth:`on_recovery` run when it ends (the quota limiter clears its local windows and replays queued settles).

Detection bound: with requests flowing, an outage is declared after ``outage_after_failures`` consecutive failed
round trips, each failing within ``timeout_s`` (up to ``lag_allowance_s`` while the loop is behind); calls in
flight together fail together. Recovery: within ``probe_interval_s`` plus one round trip of the store answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from gateway.settings.store import StateSettings
from gateway.store.client import StateClient
from gateway.store.health import Change, StoreHealth
from gateway.store.storedeadline import QueueDeadline, StoreDeadline

T = TypeVar("T")

FAILURES = (RedisError, OSError, TimeoutError)  # what counts as the store failing (a ResponseError is an answer)


class StoreDown(RedisError):
    """Raised instead of calling the store while it is down: the caller's failure path answers, no call is made."""


class StoreEvents(Protocol):
    """What the store reports; observability implements it."""

    def store_transition(self, healthy: bool, reason: str) -> None: ...

    def store_error(self, op: str, error: str) -> None: ...

    def store_false_outage(self) -> None: ...

    def store_lag_excused(self, op: str) -> None: ...


class _RequestFlag:
    """One request's "a call failed" flag, shared by the tasks the request starts (hedged attempts): a task runs
    in a copy of the request's context, so the copy holds the same flag object, and a failure there is seen by the
    request's own task."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False


class StateStore:
    def __init__(self, redis: StateClient, settings: StateSettings, *, events: StoreEvents) -> None:
        self.redis = redis
        self.settings = settings
        self._events = events
        self._health = StoreHealth(settings.outage_after_failures)
        self._recovery: list[Callable[[], None]] = []
        self._prober: asyncio.Task[None] | None = None
        # set once a call of the current request failed: its later calls are not made (see usable)
        self._failed_here: contextvars.ContextVar[_RequestFlag | None] = contextvars.ContextVar(
            "state_store_failed", default=None
        )

    @property
    def healthy(self) -> bool:
        return self._health.up

    @property
    def clear(self) -> bool:
        """Up, and its last round trip succeeded. Calls that can be skipped (breaker fetch and publish) or deferred
        (quota settles) wait for this, so a request meets at most one failing call to the store."""
        return self._health.up and self._health.failures == 0

    @property
    def usable(self) -> bool:
        """Up, and no call of the current request has failed: a request meets a failing store once at most, so it
        gains at most one bound whatever the number of its calls. Request-path callers ask this before a call."""
        flag = self._failed_here.get()
        return self._health.up and (flag is None or not flag.failed)

    def begin_request(self) -> None:
        """A new request starts in this context (the request pipeline's first stage calls it); the tasks it
        starts share its flag."""
        self._failed_here.set(_RequestFlag())

    def failed_here(self) -> None:
        """A call of the current request failed (called by :meth:`bounded`, and by callers of calls answered
        through futures when they see the failure)."""
        flag = self._failed_here.get()
        if flag is None:  # outside a request: this context only
            flag = _RequestFlag()
            self._failed_here.set(flag)
        flag.failed = True

    def on_recovery(self, listener: Callable[[], None]) -> None:
        self._recovery.append(listener)

    @contextlib.asynccontextmanager
    async def bounded(self, op: str, *, spent_s: float = 0.0) -> AsyncIterator[None]:
        """One round trip to the store, bounded; its outcome feeds the store's health. Raises what it failed
        with (a timeout as ``TimeoutError``). ``spent_s``: the part of the bound an earlier send of the same call
        used already (a call re-sent after a Redis Cluster redirect gets only what is left)."""
        bound, allowance = self.settings.timeout_s, self.settings.lag_allowance_s
        deadline = StoreDeadline(max(0.0, bound - spent_s), max(0.0, allowance - spent_s), lag_s=max(0.005, bound / 10))
        try:
            async with deadline:
                yield
        except ResponseError:
            self.succeeded(op)
            raise
        except FAILURES as exc:
            self.excused(op, deadline.excused)
            self.failed(op, exc)
            self.failed_here()
            raise
        self.excused(op, deadline.excused)
        self.succeeded(op)

    def queue_deadline(self, head: Callable[[], float | None], fire: Callable[[], None]) -> QueueDeadline:
        """The bound of calls made outside :meth:`bounded` on one ordered connection (calls answered through
        futures, in the order they were sent): ``head()`` is when the oldest unanswered one was issued, ``fire``
        runs when it has used up its bound (gateway/store/storedeadline.py)."""
        return QueueDeadline(self.settings.timeout_s, self.settings.lag_allowance_s, head, fire)

    def succeeded(self, op: str) -> None:
        """A round trip answered (an error reply is an answer too)."""
        if self._health.failures or not self._health.up:
            self._changed(self._health.success(), op)

    def failed(self, op: str, exc: BaseException) -> None:
        """A round trip failed: an error of the connection, or no answer within the bound."""
        self._changed(self._health.failure(), f"{op}: {type(exc).__name__}")

    def excused(self, op: str, times: int) -> None:
        for _ in range(times):
            self._events.store_lag_excused(op)

    async def call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        async with self.bounded(op):
            return await fn()

    def outage(self, reason: str) -> None:
        """Declare an outage now (the store could not be reached at start)."""
        self._changed(self._health.force_down(), reason)

    async def recovery(self) -> None:
        """Until the current outage ends (at once when the store is up)."""
        while self._prober is not None and not self._prober.done():
            await asyncio.shield(self._prober)

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None

    def _changed(self, change: Change, reason: str) -> None:
        if change is None:
            return
        if change == "down":
            self._events.store_transition(False, reason)
            if self._prober is None or self._prober.done():
                self._prober = asyncio.get_running_loop().create_task(self._probe())
            return
        if change == "false_outage":
            self._events.store_false_outage()
        self._events.store_transition(True, "probe succeeded" if reason == "probe" else f"{reason} succeeded")
        for listener in self._recovery:
            listener()

    async def _ping(self) -> None:
        """PING the store; on a Redis Cluster every master (the outage ends when all of them answer)."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await self.redis.ping()

    async def _reload_cluster_map(self) -> None:
        """On a Redis Cluster, after a failed probe: ask the nodes for the slot map again, so that a master
        replaced by its replica (a failover) is probed, and used, under its new name."""
        if not isinstance(self.redis, RedisCluster):
            return
        with contextlib.suppress(*FAILURES):
            async with asyncio.timeout(max(self.settings.timeout_s, self.settings.probe_interval_s)):
                await self.redis.nodes_manager.initialize()

    async def _probe(self) -> None:
        """Off the request path: PING at once, then every ``probe_interval_s``, until the store answers."""
        while not self._health.up:
            deadline = StoreDeadline(self.settings.timeout_s, self.settings.lag_allowance_s)
            try:
                async with deadline:
                    await self._ping()
            except FAILURES as exc:
                self._events.store_error("probe", type(exc).__name__)
                self._health.probed(False)
                await self._reload_cluster_map()
            else:
                self._changed(self._health.probed(True), "probe")
                return
            await asyncio.sleep(self.settings.probe_interval_s)
