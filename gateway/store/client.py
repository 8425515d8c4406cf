"""The state store's client as the gateway uses it: exactly the Redis operations it calls, as small Protocols.

redis.asyncio.Redis satisfies them (so does fakeredis's FakeAsyncRedis, a subclass of it), and so does any
double that answers the same calls (the experiments' outage-injecting state store, experiments/statefault.py).
Keeping the surface this small keeps every use of the store visible here: the bounded calls of
gateway/store/statestore.py, the Lua scripts of the quota, budgets, idempotency, cache and breakers, the breakers'
pipelined fetch, the key directory's change announcements, and the quota's own ordered connection taken from
the client's pool (gateway/quota/mux.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

# What a script's or command's argument may be (the subset of redis-py's EncodableT the gateway sends).
Arg = str | bytes | int | float


class Script(Protocol):
    """A registered Lua script (redis-py's AsyncScript): EVALSHA, loading itself on NOSCRIPT."""

    sha: str  # its SHA-1, as SCRIPT LOAD answers it

    def __call__(self, keys: Sequence[str] | None = None, args: Iterable[Arg] | None = None) -> Awaitable[Any]: ...


class Batch(Protocol):
    """A pipeline: commands queued, sent in one round trip by :meth:`execute`."""

    def hgetall(self, name: str) -> object: ...

    def execute(self) -> Awaitable[list[Any]]: ...


class Subscription(Protocol):
    """A pub/sub connection."""

    def subscribe(self, *channels: str) -> Awaitable[None]: ...

    def get_message(self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0) -> Awaitable[Any]: ...

    def aclose(self) -> Awaitable[Any]: ...


class Pool(Protocol):
    """The client's connection pool. Its connections are redis-py's own (the quota reads and writes them
    directly: gateway/quota/mux.py), so they stay untyped here."""

    def get_connection(self) -> Awaitable[Any]: ...

    def release(self, connection: Any) -> Awaitable[Any]: ...


class StateClient(Protocol):
    """The state store's client: every Redis operation the gateway makes. redis-py's Redis Cluster client
    satisfies it too."""

    def register_script(self, script: str) -> Script: ...

    def script_load(self, script: str) -> Awaitable[str]: ...

    def get(self, name: str) -> Awaitable[bytes | str | None]: ...

    def ping(self) -> Awaitable[bool]: ...

    def publish(self, channel: str, message: str) -> Awaitable[int]: ...

    def pubsub(self) -> Subscription: ...

    def pipeline(self, transaction: bool = True) -> Batch: ...

    def aclose(self) -> Awaitable[None]: ...


@runtime_checkable
class PooledClient(StateClient, Protocol):
    """A client with one connection pool to one server (one Redis, or the master a Sentinel names): the quota's
    ordered connection is taken from it (gateway/quota/mux.py). A Redis Cluster client has one pool per node."""

    @property
    def connection_pool(self) -> Pool: ...
