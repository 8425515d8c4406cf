"""Stage: the start of a request for the state store, so that a request meets a failing store once at most."""

from __future__ import annotations

from gateway.call import Call, Handler, Reply
from gateway.store.statestore import StateStore


class StoreScope:
    """First in the request pipeline: a call of an earlier request that failed in this context does not count."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        self._store.begin_request()
        return await next_(call)
