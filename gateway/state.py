"""The shared state store: Redis when a URL is given, else an embedded fakeredis (with Lua) for one process.

The Redis client uses a blocking pool: under a burst, a call waits for a free connection instead of failing at
once with MaxConnectionsError. The client's own timeouts are only a backstop: every call on a request's path is
bounded by ``state.timeout_s`` (gateway/store/statestore.py), which cancels the call long before they fire.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.store.client import StateClient


def connect_state(url: str | None, *, timeout_s: float = 5.0, max_connections: int = 64) -> StateClient:
    if url:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=5,
        )
        return aioredis.Redis(connection_pool=pool)
    import fakeredis  # the embedded default: no server needed

    return fakeredis.FakeAsyncRedis()
