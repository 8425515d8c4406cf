"""The scheduled state-store outage reaches the quota's ordered connection too (it takes its connection from the
client's pool and writes and reads on it directly)."""

from __future__ import annotations

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from experiments.statefault import FlakyState
from gateway.clock import FakeClock
from gateway.quota.mux import ScriptMux

INCR = "return redis.call('incrby', KEYS[1], ARGV[1])"


async def test_the_ordered_connection_fails_while_the_store_is_down_and_works_again_after() -> None:
    clock = FakeClock()
    store = FlakyState(fakeredis.FakeAsyncRedis(), clock=clock, windows=[(10.0, 20.0)], t0=clock.monotonic())
    sha = await store.script_load(INCR)
    mux = ScriptMux(store, timeout_s=5.0, scripts=(INCR,))
    assert await mux.evalsha(sha, ["n"], [1]) == 1  # connected before the outage
    clock.advance(10.0)
    with pytest.raises(RedisConnectionError, match="injected"):
        await mux.evalsha(sha, ["n"], [1])  # the held connection's write fails
    with pytest.raises(RedisConnectionError, match="injected"):
        await mux.evalsha_now(sha, ["n"], [1])  # and so does taking a new one
    clock.advance(10.0)
    assert await mux.evalsha(sha, ["n"], [1]) == 2  # none of the refused calls ran
    assert store.failures >= 2
    await mux.aclose()
