"""A reloaded router keeps its predecessor's state that still applies (gateway/router/carry.py), on the fake clock:
breakers of surviving routes (the same ones, or their open state under new breaker settings), shedder counts
and queues, the retry budget, latency averages of surviving routes, chaos rules set at run time."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from gateway.clock import FakeClock, run_virtual
from gateway.config import Settings
from gateway.rng import Rng
from gateway.router.breaker import State
from gateway.router.shedding import MAX_PRIORITY, LoadShedder, Shed
from gateway.runtime import Runtime, build_runtime, next_runtime
from gateway.settings.router import ChaosRule, ChaosSettings, SheddingSettings
from gateway.transport import AsgiTransport

from .conftest import settings


def _runtime(s: Settings, clock: FakeClock) -> Runtime:
    return build_runtime(s, clock=clock, rng=Rng(s.seed), state=fakeredis.FakeAsyncRedis(), transport=AsgiTransport({}))


def _open(rt: Runtime, key: str, clock: FakeClock) -> None:
    b = rt.router.breakers.get(key)
    for _ in range(20):
        b.record(False, clock.now())
    assert b.peek(clock.now()) is State.OPEN


def _without_vllm(**router: Any) -> Settings:
    return settings(
        router,
        providers=[{"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"}],
        models=[{"name": "chat", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
    )


def test_unchanged_breaker_settings_keep_the_breakers_of_surviving_routes_and_forget_the_others() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    _open(old, "openai/gpt-4o-mini", clock)
    _open(old, "vllm/llama", clock)
    new = next_runtime(old, _without_vllm())
    assert new.router.breakers is old.router.breakers
    assert new.router.breakers.states() == {"openai/gpt-4o-mini": "open"}
    assert new.router.provider_states() == {"openai": "open"}
    assert new.generation == old.generation + 1


def test_new_breaker_settings_keep_an_open_breaker_open_until_its_time() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    _open(old, "openai/gpt-4o-mini", clock)
    until = old.router.breakers.get("openai/gpt-4o-mini").open_until
    new = next_runtime(old, settings({"breaker": {"min_calls": 50}}))
    assert new.router.breakers is not old.router.breakers
    b = new.router.breakers.get("openai/gpt-4o-mini")
    assert (b.peek(clock.now()), b.open_until) == (State.OPEN, until)
    assert new.router.breakers.peek("vllm/llama") is State.CLOSED
    clock.advance(until - clock.now())
    assert b.peek(clock.now()) is State.HALF_OPEN


def test_the_shedder_carries_its_counts_and_takes_the_new_limits() -> None:
    clock = FakeClock()
    old = _runtime(settings({"shedding": {"global_limit": 4, "priority_reserve": 0}}), clock)
    for _ in range(3):
        old.router.shedder.enter(9)
    new = next_runtime(old, settings({"shedding": {"global_limit": 3, "priority_reserve": 0}}))
    assert new.router.shedder is old.router.shedder
    assert new.router.shedder.in_flight == 3
    with pytest.raises(Exception, match="global_limit"):
        new.router.shedder.enter(9)  # 3 in flight from the old generation count against the new limit of 3
    old.router.shedder.leave()  # an old generation's request ends
    new.router.shedder.enter(9)


def test_a_raised_provider_limit_lets_a_waiter_in_at_once() -> None:
    async def scenario() -> list[str]:
        shedder = LoadShedder(SheddingSettings(provider_limit=1, max_queue_wait_s=30), FakeClock())
        shedder.try_acquire("p")
        order: list[str] = []

        async def waiter() -> None:
            await shedder.acquire("p", 5)
            order.append("admitted")

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        assert shedder.queued_at("p") == 1
        shedder.reconfigure(SheddingSettings(provider_limit=2, max_queue_wait_s=30))
        await task
        order.append(f"in_flight={shedder.in_flight_at('p')}")
        return order

    assert run_virtual(scenario()) == ["admitted", "in_flight=2"]


def test_the_retry_budget_is_kept_unless_its_settings_change() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    old.router.policies.budget.on_request("openai", clock.monotonic())
    kept = next_runtime(old, settings({"retry": {"max_attempts": 2}}))
    assert kept.router.policies.budget is old.router.policies.budget
    assert kept.router.policies.budget.snapshot("openai", clock.monotonic())["requests"] == 1
    fresh = next_runtime(kept, settings({"budget": {"ratio": 0.5}}))
    assert fresh.router.policies.budget.snapshot("openai", clock.monotonic())["requests"] == 0


def test_latency_averages_of_surviving_routes_are_kept_and_smoothed_with_the_new_alpha() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    old.router.policies.latency.observe("openai/gpt-4o-mini", 1.0)
    old.router.policies.latency.observe("vllm/llama", 2.0)
    new = next_runtime(old, _without_vllm(scoring={"ewma_alpha": 0.5}))
    latency = new.router.policies.latency
    assert latency.values == {"openai/gpt-4o-mini": 1.0}
    latency.observe("openai/gpt-4o-mini", 3.0)
    assert latency.values["openai/gpt-4o-mini"] == 2.0


def test_ttft_samples_of_surviving_routes_are_kept_within_the_new_bounds() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    for v in (1.0, 2.0, 3.0):
        old.router.policies.ttft.observe("openai/gpt-4o-mini", clock.monotonic(), v)
    old.router.policies.ttft.observe("vllm/llama", clock.monotonic(), 0.1)
    new = next_runtime(old, _without_vllm(hedging={"max_samples": 2}))
    ttft = new.router.policies.ttft
    assert set(ttft.samples) == {"openai/gpt-4o-mini"}
    assert ttft.quantile("openai/gpt-4o-mini", 0.5, clock.monotonic(), min_samples=2) == 2.0  # the newest two


def test_chaos_rules_set_at_run_time_survive_a_reload_that_leaves_the_chaos_section_alone() -> None:
    clock = FakeClock()
    old = _runtime(settings(), clock)
    live = ChaosSettings(enabled=True, rules=[ChaosRule(provider="openai", fault="abort", percent=100)])
    old.router.chaos.update(live)
    kept = next_runtime(old, settings({"retry": {"max_attempts": 2}}))
    assert kept.router.chaos.settings == live
    from_file = {"enabled": True, "rules": [{"provider": "vllm", "fault": "error", "percent": 50}]}
    changed = next_runtime(kept, settings({"retry": {"max_attempts": 2}, "chaos": from_file}))
    assert changed.router.chaos.settings == ChaosSettings.model_validate(from_file)
    assert changed.router.chaos is old.router.chaos  # one random stream throughout


def test_a_trial_build_hands_nothing_over() -> None:
    clock = FakeClock()
    old = _runtime(settings({"shedding": {"global_limit": 4}}), clock)
    _open(old, "vllm/llama", clock)
    live = ChaosSettings(enabled=True, rules=[ChaosRule(provider="openai", fault="abort", percent=100)])
    old.router.chaos.update(live)
    trial = next_runtime(old, _without_vllm(shedding={"global_limit": 2}, chaos={"enabled": False}), carry=False)
    assert trial.router.shedder is not old.router.shedder
    assert trial.router.breakers is not old.router.breakers
    assert old.router.chaos.settings == live
    assert old.router.breakers.states()["vllm/llama"] == "open"  # the removed route's breaker is not dropped
    for _ in range(4):  # the old shedder still applies its own global_limit of 4, not the trial's 2
        old.router.shedder.enter(MAX_PRIORITY)
    with pytest.raises(Shed, match="global_limit"):
        old.router.shedder.enter(MAX_PRIORITY)
