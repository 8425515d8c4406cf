"""A hedged attempt that answers before the hedge delay: the delay timer is stopped and has finished by the time
the request goes on (nothing of the request left pending on the loop; virtual time, fakes for the attempt)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from gateway.call import Reply
from gateway.clock import LoopClock, run_virtual
from gateway.config import Route
from gateway.router.attempt import Attempt, Policies
from gateway.router.candidates import Candidates
from gateway.router.hedge import Hedger
from gateway.settings.router import HedgeSettings
from tests.calls import build_call


class _TimerClock(LoopClock):
    """The loop's clock; remembers the tasks that sleep on it (the hedge delay timer)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleepers: list[asyncio.Task[Any]] = []

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sleepers.append(task)
        await super().sleep(seconds)


class _Ttft:
    def quantile(self, key: str, q: float, now: float, min_samples: int) -> float:
        return 1.0  # the route usually answers within 1 s: hedge after 1 s


class _FastAttempt:
    """Answers in 0.1 s, before the hedge delay."""

    route = Route(provider="openai", model="gpt-4o-mini")
    race: Any = None

    async def run(self, priority: int, group: str) -> Reply:
        await asyncio.sleep(0.1)
        return Reply(body=b"{}")


def test_an_answer_before_the_hedge_delay_leaves_its_timer_finished() -> None:
    clock = _TimerClock()
    policies = cast(Policies, SimpleNamespace(clock=clock, ttft=_Ttft()))
    hedger = Hedger(HedgeSettings(enabled=True, min_samples=1), policies, lambda call, route: None)
    routes = cast(Candidates, SimpleNamespace(group=SimpleNamespace(name="chat")))

    async def main() -> tuple[Reply, list[bool]]:
        call = build_call(started=clock.monotonic())
        reply = await hedger.run(call, routes, cast(Attempt, _FastAttempt()), 0)
        return reply, [t.done() for t in clock.sleepers]

    reply, timers_done = run_virtual(main())
    assert reply.body == b"{}"
    assert timers_done == [True]  # the delay timer ran, was stopped, and is not left pending
