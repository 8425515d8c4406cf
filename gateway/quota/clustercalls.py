"""Script calls on a Redis Cluster, with the ordered connection's interface (gateway/quota/mux.py).

The ordered connection holds one connection to one server; a cluster has a master per slot range. Here each
EVALSHA goes through redis-py's cluster client, which sends it to the master of its keys' slot (every key of one
call shares the consumer's hash tag, so one slot) over that node's pool and follows MOVED and ASK while slots
move. Each call is bounded by the state store's one bound and counts for its health (``store``), or by a plain
``timeout_s`` (tests). What is lost against the ordered connection: calls are not written in the order they are
issued, so a settle written just before a check may reach Redis after it (the check then still counts that
request's concurrency lease; the next one does not); and each call costs a pool checkout
(docs/OPERATIONS.md, "Redis topologies and their failure behaviour").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster

from gateway.quota.mux import ScriptMux, StoreHealth
from gateway.store.client import Arg, PooledClient, StateClient


class Bound(Protocol):
    """The state store's bound (gateway.store.statestore.StateStore.bounded)."""

    def bounded(self, op: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class ScriptCalls(Protocol):
    """What the quota and the budgets need of their Redis connection (ScriptMux, ClusterScripts)."""

    def evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]: ...

    def evalsha_now(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


class ClusterStore(StoreHealth, Bound, Protocol):
    pass


class ClusterScripts:
    def __init__(
        self,
        redis: RedisCluster,
        *,
        timeout_s: float | None = None,
        scripts: Sequence[str] = (),
        store: ClusterStore | None = None,
        op: str = "quota",
    ) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self._scripts = tuple(scripts)
        self._store = store
        self._op = op
        self._calls: set[asyncio.Task[Any]] = set()

    def evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        task = asyncio.get_running_loop().create_task(self._call(sha, keys, args))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    evalsha_now = evalsha  # sent at once; not ordered with the calls issued after it (see the module's doc)

    async def _call(self, sha: str, keys: Sequence[Any], args: Sequence[Arg]) -> Any:
        bound = self._store.bounded(self._op) if self._store is not None else asyncio.timeout(self._timeout_s)
        async with bound:
            return await self._redis.evalsha(sha, len(keys), *keys, *args)

    async def ping(self) -> None:
        """Load the scripts on every master now (the cluster client sends SCRIPT LOAD to all of them)."""
        for text in self._scripts:
            await self._redis.script_load(text)

    async def aclose(self) -> None:
        """Wait for the calls in flight (up to the timeout); the client's pools close with the client."""
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=self._timeout_s)


def script_calls(
    redis: StateClient,
    *,
    timeout_s: float | None = None,
    scripts: Sequence[str] = (),
    store: ClusterStore | None = None,
    op: str = "quota",
) -> ScriptCalls:
    """The ordered connection on one server (or a Sentinel's master); per-call routing on a Redis Cluster."""
    if isinstance(redis, RedisCluster):
        return ClusterScripts(redis, timeout_s=timeout_s, scripts=scripts, store=store, op=op)
    if not isinstance(redis, PooledClient):
        raise TypeError("the state store's client has neither a connection pool nor a cluster's nodes")
    return ScriptMux(redis, timeout_s=timeout_s, scripts=scripts, store=store, op=op)
