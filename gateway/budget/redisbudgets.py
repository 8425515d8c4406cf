"""Dollar budgets on Redis: one EVALSHA to reserve (reserve.lua), one to settle (settle.lua), on one connection
in the order they are issued, written with the other calls of the same event-loop turn (gateway/quota/mux.py),
each bounded by the state store's one bound (``state.timeout_s``, gateway/store/) and counted for its health.

Keys carry the quota's prefix and the consumer as a Redis Cluster hash tag, so a request's counters (its key's
and its consumer's) live in one slot: ``<prefix>:{<consumer>}:usd:key:<key id>:d:<day>``,
``…:usd:consumer:<consumer>:m:<YYYYMM>``, ``…:usd:resv`` and ``…:usd:seq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from gateway.budget.dollars import DAY_MS, Limit, Outcome, period_of
from gateway.quota.clustercalls import script_calls
from gateway.store.client import Script
from gateway.store.statestore import FAILURES, StateStore


def _lua(name: str) -> str:
    return files("gateway.budget").joinpath(name).read_text()


class RedisBudgets:
    def __init__(self, store: StateStore, *, prefix: str, reservation_ttl_ms: int) -> None:
        self._store = store
        self._redis = redis = store.redis
        self._prefix = prefix
        self._resv_ttl_ms = reservation_ttl_ms
        self._texts = (_lua("reserve.lua"), _lua("settle.lua"))
        self._reserve, self._settle = (redis.register_script(text) for text in self._texts)
        self._batch = script_calls(redis, scripts=self._texts, store=store, op="budget")

    @property
    def usable(self) -> bool:
        """The state store is up and no call of the current request has failed (StateStore.usable)."""
        return self._store.usable

    def key(self, consumer: str, suffix: str) -> str:
        return f"{self._prefix}:{{{consumer}}}:{suffix}"

    async def load(self) -> None:
        """Load both scripts and open the connection(s) now (at start), so that the first requests pay for
        neither: a burst's first calls would otherwise wait, inside the store's bound, for the connection and
        its script loads."""
        self._reserve.sha = await self._redis.script_load(self._texts[0])
        self._settle.sha = await self._redis.script_load(self._texts[1])
        await self._batch.ping()

    async def reserve(
        self, consumer: str, limits: Sequence[Limit], cost: int, now_ms: int
    ) -> tuple[Outcome, list[str]]:
        """Reserve ``cost`` nano-dollars in every limit, or none. Returns the outcome and the counters' keys."""
        counters = [self.key(consumer, lim.suffix(now_ms)) for lim in limits]
        keys = [*counters, self.key(consumer, "usd:resv"), self.key(consumer, "usd:seq")]
        args: list[Any] = [cost, len(limits), self._resv_ttl_ms]
        for lim in limits:
            args += [lim.limit, period_of(lim.period, now_ms)[1] + DAY_MS]
        raw = list(await self._run(self._reserve, keys, args))
        used = tuple(int(x) for x in raw[2:])
        if int(raw[0]) == 1:
            handle = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
            return Outcome(True, handle, used), counters
        return Outcome(False, None, used, refused=int(raw[1]) - 1), counters

    async def settle(self, consumer: str, counters: Sequence[str], handle: str, actual: int) -> int | None:
        """Charge ``actual`` instead of the reservation, once. The delta applied, or None (already settled or
        expired: the worst case then stands)."""
        keys = [*counters, self.key(consumer, "usd:resv")]
        settled, delta = await self._run(self._settle, keys, [handle, actual, len(counters)])
        return int(delta) if int(settled) == 1 else None

    async def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._batch.evalsha(script.sha, keys, args)
        except FAILURES:
            self._store.failed_here()  # this request's later calls are not made
            raise
        except NoScriptError:  # the server lost its scripts (a restart, SCRIPT FLUSH): load it and run it alone
            async with self._store.bounded("budget"):
                return await script(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._batch.aclose()
