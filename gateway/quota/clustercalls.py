"""Script calls on a Redis Cluster, with the ordered connection's interface (gateway/quota/mux.py).

:class:`ClusterMux` (what the gateway uses): one ordered connection per master. A call goes to the master of its
keys' slot (every key of one call shares the consumer's hash tag, so one slot; the slot map is redis-py's cluster
client's), on that master's ordered connection, in the order this process issues the calls for it: one
consumer's calls keep their order, as on one server. A call answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN (slots
moving, a failover) is sent again through the cluster client, which follows the redirect and refreshes its slot
map, so the next calls go to the new owner; the re-send gets only what is left of the call's bound. A call that
finds its master gone (refused, or no answer) fails like any lost call, and makes the client ask the nodes for the
slot map again in the background, so that once a replica has taken over the next calls go to it. Until the slot
map is known (:meth:`ClusterMux.ping`, at start) calls go through the cluster client, as below.

:class:`ClusterScripts` (the fallback, and what ClusterMux was measured against): each EVALSHA goes through
redis-py's cluster client, which sends it to the master of its keys' slot over that node's pool and follows
MOVED and ASK while slots move. What it loses against the ordered connections: calls are not written in the
order they are issued, so a settle written just before a check may reach Redis after it (the check then still
counts that request's concurrency lease; the next one does not); and each call costs a pool checkout and the
cluster client's routing (docs/OPERATIONS.md, "Redis topologies and their failure behaviour").

Each call, either way, is bounded by the state store's one bound and counts for its health (``store``), or by a plain
``timeout_s`` (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.quota.mux import ScriptMux, StoreHealth
from gateway.store.client import Arg, PooledClient, StateClient

REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError)  # the slot is elsewhere, or about to be
LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)  # the master did not answer


class Bound(Protocol):
    """The state store's bound (gateway.store.statestore.StateStore.bounded)."""

    def bounded(self, op: str, *, spent_s: float = ...) -> contextlib.AbstractAsyncContextManager[None]: ...


class ScriptCalls(Protocol):
    """What the quota and the budgets need of their Redis connection (ScriptMux, ClusterScripts)."""

    def evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]: ...

    def evalsha_now(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


class ClusterStore(StoreHealth, Bound, Protocol):
    pass


class ClusterScripts:
    """Each call through the cluster client: routed, redirects followed, not ordered with the others."""

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

    def evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        """``wire`` (the command packed) is not used: the cluster client packs what it sends."""
        task = asyncio.get_running_loop().create_task(self._call(sha, keys, args))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    evalsha_now = evalsha  # sent at once; not ordered with the calls issued after it (see the module's doc)

    def resend(self, sha: str, keys: Sequence[Any], args: Sequence[Any], spent_s: float) -> asyncio.Future[Any]:
        """A call sent again after a redirect, within what is left of its bound (``spent_s`` of it already used)."""
        task = asyncio.get_running_loop().create_task(self._call(sha, keys, args, spent_s))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    async def _call(self, sha: str, keys: Sequence[Any], args: Sequence[Arg], spent_s: float = 0.0) -> Any:
        bound: contextlib.AbstractAsyncContextManager[Any]
        if self._store is not None:
            bound = self._store.bounded(self._op, spent_s=spent_s)
        else:
            bound = asyncio.timeout(None if self._timeout_s is None else max(0.0, self._timeout_s - spent_s))
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


class _NodePool:
    """One cluster node's connections, handed out as a pool's (the ordered connection keeps the one it takes)."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    async def get_connection(self) -> Any:
        conn = self._node.acquire_connection()
        try:
            await conn.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except BaseException:
            self._node.release(conn)  # back to the node's free list, or its connections run out
            raise
        return conn

    async def release(self, connection: Any) -> None:
        self._node.release(connection)


class _Node:
    def __init__(self, node: ClusterNode) -> None:
        self.connection_pool = _NodePool(node)


class ClusterMux:
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
        self._timeout_s, self._scripts, self._store, self._op = timeout_s, tuple(scripts), store, op
        self._routed = ClusterScripts(redis, timeout_s=timeout_s, scripts=scripts, store=store, op=op)
        self._muxes: dict[str, ScriptMux] = {}  # node name -> its ordered connection
        self._reload: asyncio.Task[None] | None = None

    def _mux(self, node: ClusterNode) -> ScriptMux:
        mux = self._muxes.get(node.name)
        if mux is None:
            mux = self._muxes[node.name] = ScriptMux(
                _Node(node), timeout_s=self._timeout_s, scripts=self._scripts, store=self._store, op=self._op
            )
        return mux

    def _mux_for(self, keys: Sequence[Any]) -> ScriptMux | None:
        if not keys:
            return None
        key = keys[0] if isinstance(keys[0], bytes) else str(keys[0]).encode()
        owners = self._redis.nodes_manager.slots_cache.get(key_slot(key))
        return self._mux(owners[0]) if owners else None  # the slot's master

    def evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        mux = self._mux_for(keys)
        if mux is None:
            return self._routed.evalsha(sha, keys, args)
        return self._redirected(mux.evalsha(sha, keys, args, wire=wire), sha, keys, args)

    def evalsha_now(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        mux = self._mux_for(keys)
        if mux is None:
            return self._routed.evalsha_now(sha, keys, args)
        return self._redirected(mux.evalsha_now(sha, keys, args, wire=wire), sha, keys, args)

    def _redirected(
        self, sent: asyncio.Future[Any], sha: str, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """``sent``'s answer; a redirect answered instead is sent again through the cluster client, within what is
        left of the call's bound (one logical call waits one bound, redirect or not)."""
        loop = asyncio.get_running_loop()
        out: asyncio.Future[Any] = loop.create_future()
        start = loop.time()

        def answered(f: asyncio.Future[Any]) -> None:
            exc = None if f.cancelled() else f.exception()
            if isinstance(exc, REDIRECTS):
                spent = loop.time() - start
                self._routed.resend(sha, keys, args, spent).add_done_callback(lambda r: _copy(r, out))
                return
            if isinstance(exc, LOST):  # the master may have been replaced: learn the slot map again
                self._reload_soon()
            _copy(f, out)

        sent.add_done_callback(answered)
        return out

    def _reload_soon(self) -> None:
        """Ask the nodes for the slot map again, in the background, one reload at a time."""
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._reload_map())

    async def _reload_map(self) -> None:
        with contextlib.suppress(*LOST, RedisError):
            async with asyncio.timeout(self._timeout_s or 1.0):
                await self._redis.nodes_manager.initialize()

    async def ping(self) -> None:
        """Learn the slot map, load the scripts on every master and open each master's ordered connection."""
        await self._redis.initialize()
        await self._routed.ping()
        for node in self._redis.get_primaries():
            await self._mux(node).ping()

    async def aclose(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
        await self._routed.aclose()
        for mux in self._muxes.values():
            await mux.aclose()


def _copy(src: asyncio.Future[Any], out: asyncio.Future[Any]) -> None:
    if out.done():
        return
    if src.cancelled():
        out.cancel()
    elif (exc := src.exception()) is not None:
        out.set_exception(exc)
    else:
        out.set_result(src.result())


def script_calls(
    redis: StateClient,
    *,
    timeout_s: float | None = None,
    scripts: Sequence[str] = (),
    store: ClusterStore | None = None,
    op: str = "quota",
) -> ScriptCalls:
    """The ordered connection on one server (or a Sentinel's master); one per master on a Redis Cluster."""
    if isinstance(redis, RedisCluster):
        return ClusterMux(redis, timeout_s=timeout_s, scripts=scripts, store=store, op=op)
    if not isinstance(redis, PooledClient):
        raise TypeError("the state store's client has neither a connection pool nor a cluster's nodes")
    return ScriptMux(redis, timeout_s=timeout_s, scripts=scripts, store=store, op=op)
