"""The shared limiter on Redis: one EVALSHA per check, one per settle (scripts in gateway/quota/*.lua), sent
with the other calls of the same event-loop turn in one pipeline (gateway/quota/batch.py).

Keys carry a configurable prefix and the consumer as a Redis Cluster hash tag, so all of one consumer's keys live
in one slot: ``<prefix>:{<consumer>}:rpm``, ``:tpm``, ``:tpmw``, ``:tpd:<UTC day number>``, ``:lease``,
``:resv``, ``:seq``.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from gateway.quota.batch import ScriptBatch
from gateway.quota.core import WINDOW_MS, Decision, day_index, ms_to_day_end
from gateway.quota.settings import Limits


def _lua(name: str) -> str:
    return files("gateway.quota").joinpath(name).read_text()


class RedisLimiter:
    """Same contract as :class:`gateway.quota.core.LocalLimiter`, shared by every replica."""

    def __init__(self, redis: Any, *, prefix: str, lease_ms: int, timeout_s: float | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._check = redis.register_script(_lua("check.lua"))
        self._settle = redis.register_script(_lua("settle.lua"))
        self._batch = ScriptBatch(redis, timeout_s=timeout_s)
        self._keys: dict[str, tuple[int, list[str]]] = {}  # consumer -> (UTC day, check.lua's KEYS), one per consumer

    def key(self, consumer: str, suffix: str) -> str:
        return f"{self._prefix}:{{{consumer}}}:{suffix}"

    async def load(self) -> None:
        """Load both scripts now (at start), so the first request pays no SCRIPT LOAD."""
        self._check.sha = await self._redis.script_load(self._check.script)
        self._settle.sha = await self._redis.script_load(self._settle.script)

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

    async def settle(self, consumer: str, handle: str, actual: int, day: int) -> int | None:
        k = self.key
        keys = [k(consumer, "tpmw"), k(consumer, f"tpd:{day}"), k(consumer, "lease"), k(consumer, "resv")]
        settled, delta = await self._run(self._settle, keys, [handle, actual])
        return int(delta) if int(settled) == 1 else None

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._batch.evalsha(script.sha, keys, args)
        except NoScriptError:  # the server lost its scripts (a restart, SCRIPT FLUSH): load it and run it alone
            return await script(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._batch.aclose()
