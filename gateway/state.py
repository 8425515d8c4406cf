"""The shared state store: Redis when a URL is given, else an embedded fakeredis (with Lua) for one process.

The URL names the topology (docs/OPERATIONS.md, "Redis topologies and their failure behaviour"):

* ``redis://host:port/db`` (``rediss://`` for TLS): one server. Its client uses a blocking pool: under a burst, a
  call waits for a free connection instead of failing at once with MaxConnectionsError.
* ``redis+cluster://host:port,host:port`` (``rediss+cluster://``): a Redis Cluster, reached through any of the
  nodes listed; redis-py's cluster client routes each call to the master of its key's slot and follows MOVED/ASK.
* ``redis+sentinel://host:port,host:port/master-name[/db]``: a master watched by Sentinels; the client asks the
  Sentinels for the current master at each new connection, so a failover is followed by reconnecting.

``user:password@`` before the hosts is the Redis servers' credentials (the Sentinels themselves are asked
without).

The clients' own timeouts are only a backstop: every call on a request's path is bounded by ``state.timeout_s``
(gateway/store/statestore.py), which cancels the call long before they fire.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from gateway.store.client import StateClient

Topology = Literal["single", "cluster", "sentinel"]


def topology(url: str) -> Topology:
    scheme = url.split("://", 1)[0].lower()
    if scheme.endswith("+cluster"):
        return "cluster"
    if scheme.endswith("+sentinel"):
        return "sentinel"
    return "single"


def hosts(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` pairs of a cluster or sentinel URL (6379 / 26379 when a port is left out)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    default = 26379 if topology(url) == "sentinel" else 6379
    out = []
    for part in netloc.split(","):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        out.append((host.strip("[]"), int(port) if port else default))
    return out


def credentials(url: str) -> tuple[str | None, str | None]:
    """The URL's user name and password, percent-decoded as redis-py's ``from_url`` does for ``redis://``."""
    parts = urlsplit(url)
    user, password = parts.username, parts.password
    return (None if user is None else unquote(user)), (None if password is None else unquote(password))


def connect_state(url: str | None, *, timeout_s: float = 5.0, max_connections: int = 64) -> StateClient:
    if not url:
        import fakeredis  # the embedded default: no server needed

        return fakeredis.FakeAsyncRedis()
    kind = topology(url)
    if kind == "cluster":
        nodes = [ClusterNode(host, port) for host, port in hosts(url)]
        tls = url.lower().startswith("rediss")
        username, password = credentials(url)
        return RedisCluster(
            startup_nodes=nodes,
            ssl=tls,
            username=username,
            password=password,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
    if kind == "sentinel":
        return _sentinel_master(url, timeout_s, max_connections)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=5,
    )
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool it was given
    return client


def _sentinel_master(url: str, timeout_s: float, max_connections: int) -> aioredis.Redis:
    path = [p for p in urlsplit(url).path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel:// URL names the master: redis+sentinel://host:port/master-name")
    db = int(path[1]) if len(path) > 1 else 0
    timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    username, password = credentials(url)
    auth = {"username": username, "password": password}  # the master's (and replicas')
    # Ignored on the next line: redis-py leaves Sentinel() unannotated
    sentinel = Sentinel(hosts(url), sentinel_kwargs=timeouts, **timeouts, **auth)  # type: ignore[no-untyped-call]  # unannotated in redis-py
    master: aioredis.Redis = sentinel.master_for(path[0], db=db, max_connections=max_connections)
    return master
