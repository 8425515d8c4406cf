"""The shared limiter on Redis: one EVALSHA per check, one per settle (scripts in gateway/quota/*.lua), all on
one connection in the order they are issued (gateway/quota/mux.py): a check goes out with the other calls of its
event-loop turn; a settle can be written at once and its answer left to arrive (:meth:`RedisLimiter.settle_soon`).

Keys carry a configurable prefix and the consumer as a Redis Cluster hash tag, so all of one consumer's keys live
in one slot: ``<prefix>:{<consumer>}:rpm``, ``:tpm``, ``:tpmw``, ``:tpd:<UTC day number>``, ``:lease``,
``:resv``, ``:seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from gateway.quota.algorithm import WINDOW_MS, Decision, day_index, ms_to_day_end
from gateway.quota.clustercalls import script_calls
from gateway.settings.quota import Limits
from gateway.store.client import Script, StateClient
from gateway.store.statestore import StateStore


def _lua(name: str) -> str:
    return files("gateway.quota").joinpath(name).read_text()


class RedisLimiter:
    """Same contract as :class:`gateway.quota.algorithm.LocalLimiter`, shared by every replica."""

    def __init__(
        self,
        redis: StateClient,
        *,
        prefix: str,
        lease_ms: int,
        store: StateStore | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """``store``: every call bounded by the state store's one bound and counted for its health (the gateway);
        without it, a plain ``timeout_s`` (tests)."""
        self._redis = redis
        self._store = store
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._texts = (_lua("check.lua"), _lua("settle.lua"))
        self._check, self._settle = (redis.register_script(text) for text in self._texts)
        self._mux = script_calls(redis, timeout_s=timeout_s, scripts=self._texts, store=store)
        self._keys: dict[str, tuple[int, list[str]]] = {}  # consumer -> (UTC day, check.lua's KEYS), one per consumer

    def key(self, consumer: str, suffix: str) -> str:
        return f"{self._prefix}:{{{consumer}}}:{suffix}"

    async def load(self) -> None:
        """Load both scripts and open the connection now (at start), so the first request pays for neither."""
        self._check.sha = await self._redis.script_load(self._texts[0])
        self._settle.sha = await self._redis.script_load(self._texts[1])
        await self._mux.ping()

    def _check_keys(self, consumer: str, day: int) -> list[str]:
        """check.lua's KEYS, built once per consumer and UTC day (consumers are the configured ones)."""
        hit = self._keys.get(consumer)
        if hit is not None and hit[0] == day:
            return hit[1]
        k = self.key
        keys = [k(consumer, s) for s in ("rpm", "tpm", "tpmw", f"tpd:{day}", "lease", "resv", "seq")]
        self._keys[consumer] = (day, keys)
        return keys

    async def check(self, consumer: str, now_ms: int, tokens: int, limits: Limits) -> Decision:
        keys = self._check_keys(consumer, day_index(now_ms))
        args = [
            now_ms,
            tokens,
            limits.rpm or 0,
            limits.tpm or 0,
            limits.tpd or 0,
            limits.max_concurrency or 0,
            WINDOW_MS,
            self._lease_ms,
            ms_to_day_end(now_ms),
        ]
        raw = await self._run(self._check, keys, args)
        return Decision.from_wire(list(raw))

    def _settle_keys(self, consumer: str, day: int) -> list[str]:
        k = self.key
        return [k(consumer, "tpmw"), k(consumer, f"tpd:{day}"), k(consumer, "lease"), k(consumer, "resv")]

    async def settle(self, consumer: str, handle: str, actual: int, day: int) -> int | None:
        keys = self._settle_keys(consumer, day)
        return _settled(await self._run(self._settle, keys, [handle, actual]))

    def settle_soon(self, consumer: str, handle: str, actual: int, day: int) -> asyncio.Future[int | None]:
        """Write the settle now (behind everything this process issued before it, ahead of everything after) and
        return at once; the future has settle()'s answer, or its error, when Redis replies."""
        keys, args = self._settle_keys(consumer, day), [handle, actual]
        loop = asyncio.get_running_loop()
        out: asyncio.Future[int | None] = loop.create_future()

        def answered(sent: asyncio.Future[Any]) -> None:
            exc = None if sent.cancelled() else sent.exception()
            if sent.cancelled():
                out.set_exception(TimeoutError("the settle was abandoned"))
            elif isinstance(exc, NoScriptError):  # the server lost its scripts: load and run it alone
                retry = loop.create_task(self._alone(self._settle, keys, args))
                retry.add_done_callback(lambda t: _chain(t, out))
            elif exc is not None:
                out.set_exception(exc)
            else:
                out.set_result(_settled(sent.result()))

        self._mux.evalsha_now(self._settle.sha, keys, args).add_done_callback(answered)
        return out

    async def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._mux.evalsha(script.sha, keys, args)
        except NoScriptError:  # the server lost its scripts (a restart, SCRIPT FLUSH): load it and run it alone
            return await self._alone(script, keys, args)

    async def _alone(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """``script`` on a pooled connection of its own (it loads itself on NOSCRIPT), within the store's bound."""
        async with self._store.bounded("quota") if self._store else contextlib.nullcontext():
            return await script(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._mux.aclose()


def _settled(raw: Any) -> int | None:
    settled, delta = raw
    return int(delta) if int(settled) == 1 else None


def _chain(task: asyncio.Task[Any], out: asyncio.Future[int | None]) -> None:
    if task.cancelled():
        out.set_exception(TimeoutError("the settle was abandoned"))
    elif (exc := task.exception()) is not None:
        out.set_exception(exc)
    else:
        out.set_result(_settled(task.result()))
