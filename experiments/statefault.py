"""A state store that dies on schedule, for the redis-outage scenario in replay.

:class:`FlakyState` wraps a redis.asyncio client (fakeredis in replay). While the clock is inside one of its
outage windows, every awaited command, script and pipeline raises ``redis.exceptions.ConnectionError``, as a
client of a dead server does; outside them it passes through. Its ``connection_pool`` is wrapped the same way,
for the quota's ordered connection (gateway/quota/mux.py), which takes a connection from the pool and writes and
reads on it directly: while down, taking a connection fails, and so does writing to or reading from one taken
before. The gateway gets it through create_app's ``state`` argument, so no gateway code knows it is being
tested.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.clock import Clock
from gateway.store.client import Pool, PooledClient


class FlakyState:
    def __init__(self, inner: PooledClient, *, clock: Clock, windows: Sequence[tuple[float, float]], t0: float = 0.0):
        self._inner = inner
        self._clock = clock
        self._windows = tuple(windows)
        self._t0 = t0
        self.failures = 0

    def down(self) -> bool:
        t = self._clock.monotonic() - self._t0
        return any(start <= t < end for start, end in self._windows)

    async def _guard(self, aw: Awaitable[Any]) -> Any:
        if self.down():
            if inspect.iscoroutine(aw):
                aw.close()
            raise self.refused()
        return await aw

    def register_script(self, script: str | bytes) -> AsyncScript:
        # redis-py types its script's client as a Redis; this double answers every call the script makes
        return AsyncScript(self, script)  # type: ignore[arg-type]

    @property
    def connection_pool(self) -> _FlakyPool:
        return _FlakyPool(self, self._inner.connection_pool)

    def refused(self) -> RedisConnectionError:
        self.failures += 1
        return RedisConnectionError("Error 111 connecting to state store. Connection refused. (injected)")

    def pipeline(self, *args: Any, **kwargs: Any) -> _FlakyPipeline:
        return _FlakyPipeline(self, self._inner.pipeline(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self._guard(result) if inspect.isawaitable(result) else result

        return call


class _FlakyPipeline:
    def __init__(self, owner: FlakyState, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._owner._guard(self._inner.execute(*args, **kwargs))

    async def __aenter__(self) -> _FlakyPipeline:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self if result is self._inner else result

        return call


class _FlakyPool:
    """The client's pool: connections taken from it fail while the store is down."""

    def __init__(self, owner: FlakyState, inner: Pool) -> None:
        self._owner = owner
        self._inner = inner

    async def get_connection(self, *args: Any, **kwargs: Any) -> _FlakyConnection:
        if self._owner.down():
            raise self._owner.refused()
        return _FlakyConnection(self._owner, await self._inner.get_connection(*args, **kwargs))

    async def release(self, conn: Any) -> None:
        await self._inner.release(conn._inner if isinstance(conn, _FlakyConnection) else conn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FlakyConnection:
    """A connection whose writes and reads fail while the store is down (as a socket to a dead server's would)."""

    def __init__(self, owner: FlakyState, inner: Any) -> None:
        self._owner = owner
        self._inner = inner
        self._writer = _FlakyWriter(owner, inner._writer)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        answer = await self._inner.read_response(*args, **kwargs)
        if self._owner.down():
            raise self._owner.refused()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FlakyWriter:
    def __init__(self, owner: FlakyState, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    def writelines(self, data: Any) -> None:
        if self._owner.down():
            raise self._owner.refused()
        self._inner.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
