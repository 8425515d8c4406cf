"""The seeded open-loop workload and the scheduled state-store outage, without running a replay."""

from __future__ import annotations

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from experiments.scenario import Spike
from experiments.scenario_files import load_scenario
from experiments.statefault import FlakyState
from experiments.workload import arrival_times, arrivals
from gateway.clock import FakeClock


def test_arrivals_are_a_function_of_the_scenario_and_the_seed() -> None:
    sc = load_scenario("noisy-neighbor")
    a, b, other = arrivals(sc, 8), arrivals(sc, 8), arrivals(sc, 9)
    assert a == b
    assert [x.t for x in a] != [x.t for x in other]
    assert [x.t for x in a] == sorted(x.t for x in a)


def test_a_spike_adds_arrivals_without_moving_the_phases() -> None:
    sc = load_scenario("baseline")
    spiked = sc.model_copy(update={"load": sc.load.model_copy(update={"spikes": [Spike(start_s=10, end_s=20, rps=5)]})})
    base = [t for t, _, phase in arrival_times(sc, 1) if phase is not None]
    with_spike = arrival_times(spiked, 1)
    assert [t for t, _, phase in with_spike if phase is not None] == base
    extra = [t for t, _, phase in with_spike if phase is None]
    assert extra and all(10 <= t < 20 for t in extra)


def test_a_spike_from_one_consumer_sends_only_its_requests() -> None:
    sc = load_scenario("noisy-neighbor")
    flood = sc.load.spikes[0]
    during = [a for a in arrivals(sc, sc.seed) if flood.start_s <= a.t < flood.end_s]
    noisy = [a for a in during if a.consumer.name == "noisy"]
    rate = len(noisy) / (flood.end_s - flood.start_s)
    assert rate > flood.rps * 0.8  # the flood, on top of the consumer's share of the base load


async def test_the_state_store_is_down_only_inside_its_windows() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    store = FlakyState(fakeredis.FakeAsyncRedis(), clock=clock, windows=[(10.0, 20.0)], t0=t0)
    assert await store.set("k", "1")
    clock.advance(10)
    with pytest.raises(RedisConnectionError):
        await store.get("k")
    with pytest.raises(RedisConnectionError):
        await store.pipeline().incr("k").execute()
    assert store.failures == 2
    clock.advance(10)
    assert await store.get("k") == b"1"
    async with store.pipeline() as pipe:
        assert await pipe.incr("k").execute() == [2]
