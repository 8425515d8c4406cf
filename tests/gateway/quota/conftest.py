"""Quota test fixtures."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from experiments.statefault import FlakyState
from gateway.clock import FakeClock
from gateway.quota.limiter import QuotaCounters
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore


def store_for(client: Any, events: QuotaCounters, **state: Any) -> StateStore:
    """A state store over ``client`` for the limiter tests: one failed round trip is an outage, probes are quick."""
    settings = {"timeout_s": 0.5, "outage_after_failures": 1, "probe_interval_s": 0.01, **state}
    return StateStore(client, StateSettings(**settings), events=events)


class SwitchedState(FlakyState):
    """A state client that goes down and comes back when a test says so: :class:`FlakyState`
    (experiments/statefault.py) over a real client, turned by hand instead of by its clock's outage windows.
    Handed to the store through its constructor, as create_app's ``state`` is: no test reaches inside."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, clock=FakeClock(), windows=())
        self.dead = False

    def down(self) -> bool:
        return self.dead

    async def revive(self) -> None:
        """The store answers again. A few turns of the event loop first, no time: the connection dropped while it
        was down is closed on tasks of its own, and fakeredis (unlike redis-py on a real server) fails the
        reconnection of that connection object while its close is still in progress."""
        for _ in range(5):
            await asyncio.sleep(0)
        self.dead = False


async def until(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Let the event loop run other tasks (a probe, a replay) until ``condition`` holds: turns, not time."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not reached in {turns} turns of the event loop")


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
