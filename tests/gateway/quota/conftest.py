"""Quota test fixtures."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.quota.limiter import QuotaCounters, QuotaLimiter
from gateway.quota.mux import ScriptMux
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore


def store_for(client: Any, events: QuotaCounters, **state: Any) -> StateStore:
    """A state store over ``client`` for the limiter tests: one failed round trip is an outage, probes are quick."""
    settings = {"timeout_s": 0.5, "outage_after_failures": 1, "probe_interval_s": 0.01, **state}
    return StateStore(client, StateSettings(**settings), events=events)


def point_at(lim: QuotaLimiter, client: Any) -> None:
    """The limiter's scripts (and the store's probes) now talk to ``client``: the store goes away (a dead port),
    or comes back."""
    remote, store = lim._remote, lim._store
    store.redis = client
    remote._redis = client
    remote._check.registered_client = client
    remote._settle.registered_client = client
    remote._mux = ScriptMux(client, store=store)


@pytest.fixture
async def prefix(state_store: aioredis.Redis, key_prefix: str) -> AsyncIterator[str]:
    """``key_prefix`` without glob characters (parametrized ids have brackets), emptied before and after."""
    clean = re.sub(r"[^A-Za-z0-9:_-]", "-", key_prefix)

    async def wipe() -> None:
        async for key in state_store.scan_iter(match=f"{clean}:*"):
            await state_store.delete(key)

    await wipe()
    yield clean
    await wipe()
