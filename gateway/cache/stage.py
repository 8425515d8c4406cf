"""Stage: the response cache, after the quota stage (a hit counts against the request quota) and before the
budget stage (a hit costs nothing upstream).

Only for model groups listed in ``cache.groups``, and only for deterministic requests: ``temperature`` 0, or a
``seed``. The key is the SHA-256 of the canonical request: the model group, every field of the body that can
change the answer (messages, temperature, seed, max_tokens, tools, response_format, stop, ...; sorted keys), and
whether and how it streams; not ``user``. Per consumer, or one cache for all (``cache.scope``).

``Cache-Control: no-cache`` skips the lookup (the fresh answer is stored); ``no-store`` skips the cache both
ways. A hit is answered from Redis with ``x-cache: hit`` (a stream re-sent one event per chunk); every other
cacheable request carries ``x-cache: miss``. Stored: 200 answers only, JSON after its body went out, a stream
once its ``[DONE]`` passed with no error event; never an error or a cut stream, nor an answer larger than
``cache.max_entry_bytes``. Every call is bounded by the state store's one bound (``state.timeout_s``,
gateway/store/) and counts for its health; a lookup that fails or is not answered within it is a miss, and
during a declared outage the cache is neither read nor written.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from importlib.resources import files
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from gateway.adapters.sse import DONE
from gateway.call import Call, Handler, Reply, finish_with
from gateway.catalog import ModelCatalog
from gateway.clock import Clock
from gateway.idempotency.stage import replay_stream
from gateway.settings.cache import CacheSettings
from gateway.store.statestore import StateStore

_NOT_IN_KEY = frozenset(("model", "user"))


class CacheEvents(Protocol):
    def cache_lookup(self, result: str) -> None: ...

    def cache_bytes(self, op: str, n: int) -> None: ...

    def store_error(self, op: str, error: str) -> None: ...


def deterministic(payload: Mapping[str, Any]) -> bool:
    temperature = payload.get("temperature")
    seed = payload.get("seed")
    return (isinstance(temperature, int | float) and temperature == 0) or (
        isinstance(seed, int) and not isinstance(seed, bool)
    )


def cache_key(group: str, payload: Mapping[str, Any]) -> str:
    canonical = {k: v for k, v in payload.items() if k not in _NOT_IN_KEY}
    canonical["model"] = group
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


class CacheStage:
    def __init__(
        self,
        store: StateStore,
        settings: CacheSettings,
        *,
        prefix: str,
        catalog: ModelCatalog,
        clock: Clock,
        events: CacheEvents,
    ) -> None:
        self._state = store
        self._s = settings
        self._groups = frozenset(settings.groups)
        self._prefix = prefix
        self._catalog = catalog
        self._clock = clock
        self._events = events
        self._put = store.redis.register_script(files("gateway.cache").joinpath("put.lua").read_text())

    def _keys(self, scope: str, digest: str) -> tuple[str, str]:
        base = f"{self._prefix}:cache:{{{scope}}}"
        return f"{base}:{digest}", f"{base}:index"

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        payload, body, consumer = call.payload, call.body, call.consumer
        if payload is None or body is None or consumer is None or not deterministic(payload):
            return await next_(call)
        group = self._catalog.resolve(body.model).name
        if group not in self._groups:
            return await next_(call)
        control = call.headers.get("cache-control", "").lower()
        if "no-store" in control:
            return await next_(call)
        scope = consumer.name if self._s.scope == "consumer" else "shared"
        entry, index = self._keys(scope, cache_key(group, payload))
        if "no-cache" not in control:
            hit = await self._get(entry)
            if hit is not None:
                return self._hit(call, hit)
        self._events.cache_lookup("miss")
        call.record.decisions["cache"] = {"result": "miss"}
        call.response_headers["x-cache"] = "miss"
        reply = await next_(call)
        if reply.status != 200:
            return reply
        if reply.stream is not None:
            reply.stream = self._recording(reply.stream, entry, index)
            return reply
        data = reply.body

        async def store() -> None:
            if data is not None:
                await self._store(entry, index, b"j" + data)

        return finish_with(call, reply, store)

    def _hit(self, call: Call, value: bytes) -> Reply:
        self._events.cache_lookup("hit")
        self._events.cache_bytes("served", len(value) - 1)
        call.record.decisions["cache"] = {"result": "hit"}
        call.response_headers["x-cache"] = "hit"
        if value[:1] == b"s":
            return Reply(stream=replay_stream(value[1:]))
        return Reply(body=value[1:])

    async def _get(self, entry: str) -> bytes | None:
        if not self._state.usable:
            return None
        try:
            async with self._state.bounded("cache_get"):
                value = await self._state.redis.get(entry)
        except (RedisError, OSError, TimeoutError) as exc:
            self._events.store_error("cache_get", type(exc).__name__)
            return None
        return value if isinstance(value, bytes) and value[:1] in (b"j", b"s") else None

    async def _recording(self, stream: AsyncIterator[bytes], entry: str, index: str) -> AsyncIterator[bytes]:
        parts: list[bytes] = []
        size = 0
        async for chunk in stream:
            size += len(chunk)
            if size <= self._s.max_entry_bytes:
                parts.append(chunk)
                if chunk.endswith(DONE) and not any(p.startswith(b'data: {"error"') for p in parts):
                    await self._store(entry, index, b"s" + b"".join(parts))
            yield chunk

    async def _store(self, entry: str, index: str, value: bytes) -> None:
        if len(value) - 1 > self._s.max_entry_bytes or not self._state.usable:
            return
        now_ms = int(self._clock.now() * 1000)
        try:
            async with self._state.bounded("cache_put"):
                await self._put(
                    keys=[entry, index], args=[value, int(self._s.ttl_s * 1000), now_ms, self._s.max_entries]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._events.store_error("cache_put", type(exc).__name__)
            return
        self._events.cache_bytes("stored", len(value) - 1)
