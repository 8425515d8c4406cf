"""All circuit breakers of a gateway, shared across replicas through the state store.

Each replica decides locally (gateway/router/breaker.py) from its own sliding window. Transitions to ``open``
and ``closed`` are published to the state store (one hash per breaker, written by breaker_publish.lua: the newest
``changed_at`` wins); other replicas read it at most once per ``cache_s`` per breaker (a request's stale ones in
one pipelined round trip) and adopt a newer state, so a breaker opened by one replica opens on all of them within
``cache_s`` and the hot path pays no round trip per request. ``half_open`` is not published: every replica
derives it from ``open_until`` and lets its own ``half_open_probes`` through. A state-store failure never fails a
request: the replica goes on locally. A fetch is bounded by the state store's one bound (``state.timeout_s``,
gateway/store/); neither a fetch nor a publish is made while the store is down or its last round trip failed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.clock import Clock
from gateway.router.breaker import CircuitBreaker, State, Transition, TransitionListener
from gateway.settings.router import BreakerSettings
from gateway.store.client import Arg
from gateway.store.statestore import StateStore

_PUBLISH_LUA = (Path(__file__).parent / "lua" / "breaker_publish.lua").read_text


class BreakerStore(Protocol):
    async def publish(self, key: str, state: State, open_until: float, changed_at: float) -> None: ...

    async def fetch(self, keys: Sequence[str]) -> list[tuple[State, float, float] | None]: ...


class RedisBreakerStore:
    """Breaker states in Redis: ``{prefix}:breaker:{key}`` hashes."""

    def __init__(
        self, store: StateStore, *, prefix: str = "faultline", origin: str = "", ttl_s: float = 3600.0
    ) -> None:
        self._store = store
        self._redis = store.redis
        self._prefix = prefix
        self._origin = origin
        self._ttl_ms = int(ttl_s * 1000)
        self._script = store.redis.register_script(_PUBLISH_LUA())

    def _k(self, key: str) -> str:
        return f"{self._prefix}:breaker:{key}"

    async def publish(self, key: str, state: State, open_until: float, changed_at: float) -> None:
        if not (self._store.clear and self._store.usable):
            return
        args: list[Arg] = [str(state), repr(open_until), repr(changed_at), self._ttl_ms, self._origin]
        async with self._store.bounded("breaker_publish"):
            await self._script(keys=[self._k(key)], args=args)

    async def fetch(self, keys: Sequence[str]) -> list[tuple[State, float, float] | None]:
        """The stored state of each key (None: nothing stored, or the store is down), in one round trip."""
        if not (self._store.clear and self._store.usable):
            return [None] * len(keys)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._k(key))
        async with self._store.bounded("breaker_fetch"):
            raw = await pipe.execute()
        return [_parse(r) for r in raw]


def _parse(raw: dict[Any, Any]) -> tuple[State, float, float] | None:
    if not raw:
        return None
    d = {_text(k): _text(v) for k, v in raw.items()}
    return State(d["state"]), float(d["open_until"]), float(d["changed_at"])


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class Breakers:
    def __init__(
        self,
        settings: BreakerSettings,
        clock: Clock,
        *,
        store: BreakerStore | None = None,
        listeners: Sequence[TransitionListener] = (),
        on_store_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self._s = settings
        self._cache_s = settings.cache_s
        self._on_store_failure = on_store_failure
        self._clock = clock
        self._store = store if settings.shared else None
        self._listeners = list(listeners)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._synced: dict[str, float] = {}
        self._retired: set[str] = set()  # keys whose routes a reload removed (see retain)

    def add_listener(self, listener: TransitionListener) -> None:
        self._listeners.append(listener)

    def key(self, provider: str, model: str) -> str:
        return f"{provider}/{model}" if self._s.per_model else provider

    def get(self, key: str) -> CircuitBreaker:
        """``key``'s breaker, made on first use; for a retired key (see :meth:`retain`) a detached one, kept
        nowhere, so a request still in flight on the route does not bring its breaker back."""
        b = self._breakers.get(key)
        if b is None:
            b = CircuitBreaker(key, self._s)
            if key not in self._retired:
                self._breakers[key] = b
        return b

    def peek(self, key: str, now: float | None = None) -> State:
        return self.get(key).peek(self._clock.now() if now is None else now)

    def states(self) -> dict[str, str]:
        now = self._clock.now()
        return {k: str(b.peek(now)) for k, b in self._breakers.items()}

    def provider_states(self, providers: Iterable[str]) -> dict[str, str]:
        """Each provider's routing state: ``open`` when all its breakers are open, else the most open one."""
        states: dict[str, set[str]] = {name: set() for name in providers}
        for key, st in self.states().items():
            states.setdefault(key.split("/", 1)[0], set()).add(st)
        out = {}
        for provider, seen in states.items():
            if seen == {"open"}:
                out[provider] = "open"
            elif "open" in seen or "half_open" in seen:
                out[provider] = "half_open"
            else:
                out[provider] = "closed"
        return out

    async def refresh(self, keys: Iterable[str]) -> list[Transition]:
        """Adopt newer shared states for ``keys`` whose local copy is older than ``cache_s`` (one round trip)."""
        if self._store is None:
            return []
        return await self.fetch(self.stale(keys, self._clock.monotonic()))

    def stale(self, keys: Iterable[str], now_m: float) -> list[str]:
        """Those of ``keys`` whose local copy is older than ``cache_s`` (monotonic ``now_m``), marked as refreshed
        now: pass them to :meth:`fetch`. None without a store."""
        if self._store is None:
            return []
        synced, cache_s = self._synced, self._cache_s
        stale = []
        for key in keys:  # a loop, not a comprehension: no function and cells made per request
            if now_m - synced.get(key, -1e18) >= cache_s:
                stale.append(key)  # noqa: PERF401 - the loop is the point (see above)
        for key in stale:
            synced[key] = now_m
        return stale

    async def fetch(self, stale: Sequence[str]) -> list[Transition]:
        """Adopt the newer shared states of ``stale`` (from :meth:`stale`), in one round trip."""
        if self._store is None or not stale:
            return []
        try:
            fetched = await self._store.fetch(stale)
        except Exception as exc:  # the state store is an optimisation here, never a dependency
            self._store_failed("breaker_fetch", ",".join(stale), exc)
            return []
        events: list[Transition] = []
        for key, shared in zip(stale, fetched, strict=True):
            if shared is not None and key not in self._retired:
                event = self.get(key).adopt(*shared, now=self._clock.now())
                if event is not None:
                    self._emit(event)
                    events.append(event)
        return events

    def admit(self, key: str, now: float) -> tuple[bool, Transition | None]:
        """May a call go to ``key`` at ``now`` (epoch seconds)? A half-open breaker admits its probes only."""
        ok, event = self.get(key).allow(now)
        if event is not None:
            self._emit(event)
        return ok, event

    def release(self, key: str) -> None:
        self.get(key).release()

    def retain(self, keys: Collection[str]) -> None:
        """Forget the breakers not in ``keys`` (their routes left the configuration: gateway/router/carry.py).

        Those keys are retired until a later ``retain`` names them again: the verdicts of attempts still in flight
        on them are dropped instead of making (and publishing) a breaker for a route no longer configured."""
        for key in [k for k in self._breakers if k not in keys]:
            del self._breakers[key]
            self._synced.pop(key, None)
            self._retired.add(key)
        self._retired.difference_update(keys)

    async def record(self, key: str, ok: bool, *, counted: bool = False) -> Transition | None:
        event = self.verdict(key, ok, counted=counted)
        if event is not None:
            await self.publish(key)
        return event

    def verdict(self, key: str, ok: bool, *, counted: bool = False, now: float | None = None) -> Transition | None:
        """:meth:`record` up to its transition, emitted to the listeners; a transition is then to be published
        (:meth:`publish`). No coroutine for the usual verdict, which moves nothing. ``now``: the clock's epoch
        time, when the caller has just read it."""
        if key in self._retired:
            return None
        event = self.get(key).record(ok, self._clock.now() if now is None else now, counted=counted)
        if event is not None:
            self._emit(event)
        return event

    async def publish(self, key: str) -> None:
        """Publish ``key``'s state (after a transition) to the state store, when it is shared."""
        await self._publish(self.get(key))

    async def slow(self, key: str) -> Transition | None:
        """A call to ``key`` has been running for ``slow_call_s`` (see :meth:`CircuitBreaker.slow`)."""
        if key in self._retired:
            return None
        b = self.get(key)
        return await self._after(b, b.slow(self._clock.now()))

    async def _after(self, b: CircuitBreaker, event: Transition | None) -> Transition | None:
        if event is not None:
            self._emit(event)
            await self._publish(b)
        return event

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until the first of ``keys`` leaves ``open`` (0 when one is not open)."""
        now = self._clock.now()
        waits = [max(0.0, b.open_until - now) if b.peek(now) is State.OPEN else 0.0 for b in map(self.get, keys)]
        return min(waits, default=0.0)

    async def _publish(self, b: CircuitBreaker) -> None:
        if self._store is None or b.state is State.HALF_OPEN:
            return
        try:
            await self._store.publish(b.key, b.state, b.open_until, b.changed_at)
        except Exception as exc:
            self._store_failed("breaker_publish", b.key, exc)

    def _store_failed(self, operation: str, key: str, exc: Exception) -> None:
        if self._on_store_failure is not None:
            self._on_store_failure(operation, type(exc).__name__)

    def _emit(self, event: Transition) -> None:
        for listener in self._listeners:
            try:
                listener.on_transition(event)
            except Exception as exc:  # a listener's bug must not stop the others or the request
                self._store_failed("breaker_listener", event.key, exc)
