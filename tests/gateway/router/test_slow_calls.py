"""Slow-call breaking through the router: a hung upstream opens its breaker ``slow_call_s`` after its calls
started, not after the first-byte timeout (virtual time, simulators in process)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from gateway.clock import run_virtual
from gateway.errors import GatewayError

from .conftest import RecordingEvents, make_call, profile, runtime, send, settings

HANG = profile({"type": "outage", "start_s": 0, "mode": "hang"})
BREAKER = {"min_calls": 4, "failure_rate": 0.5, "consecutive_failures": 0, "cooloff_s": 5}
SLOW = {**BREAKER, "slow_call_s": 2.0, "slow_call_rate": 0.5}


def _hung_calls(breaker: Mapping[str, object]) -> tuple[float, list[float], RecordingEvents]:
    """Four requests to a hung provider 0.1 s apart, then one at 3 s: (when its breaker last changed state,
    each request's time to its answer, the events)."""
    s = settings({"breaker": breaker, "retry": {"max_attempts": 1}})
    events = RecordingEvents()

    async def main() -> tuple[float, list[float]]:
        rt, _ = runtime(s, openai=HANG, events=events)
        t0 = rt.clock.now()

        async def one(i: int, at: float) -> float:
            await asyncio.sleep(at)
            start = rt.clock.monotonic()
            r, _ = await send(rt, make_call(rt, model="solo", n=i))
            assert isinstance(r, GatewayError) and r.status in (503, 504)
            return round(rt.clock.monotonic() - start, 6)

        took = await asyncio.gather(*(one(i, at) for i, at in enumerate((0.0, 0.1, 0.2, 0.3, 3.0))))
        changed = rt.router.breakers.get(rt.router.breakers.key("openai", "gpt-4o-mini")).changed_at
        return round(changed - t0, 6), list(took)

    changed, took = run_virtual(main())
    return changed, took, events


def test_a_hung_provider_opens_its_breaker_after_slow_call_s() -> None:
    changed, took, events = _hung_calls(SLOW)
    assert events.named("breaker_reason") == [("openai", "open", "slow_call_rate")]
    assert changed == 2.3  # the fourth call (started at 0.3 s) went slow: 4 of 4 slow
    assert events.named("slow_call") == [("openai",)] * 4
    assert took == [30.0, 30.0, 30.0, 30.0, 0.0]  # the request at 3 s is refused at once: the breaker is open


def test_without_slow_call_s_the_hung_provider_costs_every_request_the_first_byte_timeout() -> None:
    changed, took, events = _hung_calls(BREAKER)
    assert events.named("slow_call") == []
    assert events.named("breaker_reason") == [("openai", "open", "failure_rate")]
    assert changed == 30.3  # the fourth timeout
    assert took == [30.0, 30.0, 30.0, 30.0, 30.0]  # the fifth request started before the first timeout


def _cancelled_after(seconds: float) -> tuple[tuple[int, int, int], RecordingEvents, int]:
    """One request to a hung provider, cancelled (the client left) after ``seconds``: the breaker's window, the
    events, the provider's slots still held."""
    events = RecordingEvents()

    async def main() -> tuple[tuple[int, int, int], int]:
        rt, _ = runtime(settings({"breaker": SLOW}), openai=HANG, events=events)
        task = asyncio.create_task(send(rt, make_call(rt, model="solo")))
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        key = rt.router.breakers.key("openai", "gpt-4o-mini")
        return rt.router.breakers.get(key).counts(rt.clock.now()), rt.router.shedder.in_flight_at("openai")

    counts, held = run_virtual(main())
    return counts, events, held


def test_a_call_cancelled_past_slow_call_s_stays_counted_as_slow_once() -> None:
    counts, events, held = _cancelled_after(3.0)
    assert counts == (1, 0, 1) and events.named("slow_call") == [("openai",)] and held == 0


def test_a_call_cancelled_before_slow_call_s_is_not_counted() -> None:
    counts, events, held = _cancelled_after(1.0)
    assert counts == (0, 0, 0) and events.named("slow_call") == [] and held == 0


def test_calls_answered_in_time_are_not_slow() -> None:
    events = RecordingEvents()

    async def main() -> tuple[int, int, int]:
        rt, _ = runtime(settings({"breaker": SLOW}), events=events)
        for i in range(3):
            r, _ = await send(rt, make_call(rt, model="solo", n=i, stream=i == 1))
            assert not isinstance(r, GatewayError)
        await asyncio.sleep(5.0)  # past slow_call_s: no timer left behind fires
        return rt.router.breakers.get(rt.router.breakers.key("openai", "gpt-4o-mini")).counts(rt.clock.now())

    assert run_virtual(main()) == (3, 0, 0)
    assert events.named("slow_call") == []


def test_an_answer_at_slow_call_s_counts_as_one_slow_call() -> None:
    at_threshold = {"base": "instant", "latency": {"time-to-first-token": 2000}}  # exactly slow_call_s
    events = RecordingEvents()

    async def main() -> tuple[tuple[int, int, int], float]:
        rt, _ = runtime(settings({"breaker": SLOW}), openai=at_threshold, events=events)
        t0 = rt.clock.monotonic()
        for i, stream in enumerate((False, True)):
            r, _ = await send(rt, make_call(rt, model="solo", n=i, stream=stream))
            assert not isinstance(r, GatewayError)
        key = rt.router.breakers.key("openai", "gpt-4o-mini")
        return rt.router.breakers.get(key).counts(rt.clock.now()), rt.clock.monotonic() - t0

    counts, took = run_virtual(main())
    assert took >= 4.0
    assert counts == (2, 0, 2) and events.named("slow_call") == [("openai",)] * 2


def test_a_call_answered_before_slow_call_s_leaves_no_timer_pending() -> None:
    """The slow-call timer of an attempt answered in time is stopped and has finished when the request goes on
    (nothing left pending for the loop to destroy at shutdown)."""
    fast = {"base": "instant", "latency": {"time-to-first-token": 100}}

    async def main() -> tuple[int, list[str]]:
        rt, _ = runtime(settings({"breaker": SLOW}), openai=fast)
        reply = await rt.router(make_call(rt, model="solo"))
        pending = [getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks() if not t.done()]
        return reply.status, [name for name in pending if name.endswith("_went_slow")]

    status, timers = run_virtual(main())
    assert status == 200
    assert timers == []
