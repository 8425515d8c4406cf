"""Hedged requests: a second attempt on another route when the first is slower than its route usually is.

When hedging is on for the attempt's route (``router.hedging``: ``enabled``, or the route in ``routes``), the
attempt runs as a task and :class:`Hedger` waits the route's recent time-to-first-byte quantile
(``quantile``, 0.95 by default; gateway/router/latency.py; at least ``min_delay_s``). If the attempt has not
answered by then, a second attempt goes to the next candidate route, when all of these hold:

* the request has not been hedged yet (one hedge per request at most);
* the route has ``min_samples`` recent samples, and the wait ends before the request deadline;
* there is another usable route, its breaker admits the attempt, and the retry budget allows an extra attempt
  to it, decided and charged exactly as a failover to it would be (gateway/router/retrybudget.py: always allowed to a
  healthy provider — a provider that hangs is an outage of one provider, and every request waiting on it is
  hedged — and within ``ratio`` of the requests otherwise).

The first attempt to answer — a JSON body, or a stream's head, which is read before anything reaches the client
— wins (:class:`gateway.router.attempt.Race`); the other is cancelled, which frees its provider slot and gives a
half-open probe back through :meth:`Attempt.end`, once. An attempt that fails does not end the race: the other
one may still answer. When both fail, the first attempt's error goes back to the attempt loop, which counts the
hedge among the attempts made. Nothing is hedged once a byte has reached the client: the race is over by then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.call import Call, Reply
from gateway.config import Route
from gateway.router.attempt import Attempt, Policies, Race, RaceLost
from gateway.router.candidates import Candidates
from gateway.router.selection import route_key
from gateway.settings.router import HedgeSettings

Admit = Callable[[Call, Route], Attempt | None]


class Hedger:
    def __init__(self, settings: HedgeSettings, policies: Policies, admit: Admit) -> None:
        self._s = settings
        self._p = policies
        self._admit = admit
        self._routes = set(settings.routes)
        self.off = not (settings.enabled or self._routes)  # no route is ever hedged

    def delay(self, call: Call, route: Route) -> float | None:
        """How long to wait before hedging an attempt on ``route`` (None: no hedge)."""
        s = self._s
        if not (s.enabled or self._routes) or "hedge" in call.record.decisions:
            return None  # off: no work per attempt
        key = route_key(route)
        if not s.enabled and key not in self._routes:
            return None
        now = self._p.clock.monotonic()
        q = self._p.ttft.quantile(key, s.quantile, now, s.min_samples)
        if q is None:
            return None
        wait = max(q, s.min_delay_s)
        return wait if now + wait < call.deadline else None

    async def run(self, call: Call, routes: Candidates, attempt: Attempt, priority: int) -> Reply:
        """``attempt.run``, hedged when :meth:`delay` says so."""
        group = routes.group.name
        wait = self.delay(call, attempt.route)
        if wait is None:
            return await attempt.run(priority, group)
        attempt.race = race = Race()
        tasks = [asyncio.create_task(attempt.run(priority, group))]
        timer = asyncio.create_task(self._p.clock.sleep(wait))
        try:
            await asyncio.wait((tasks[0], timer), return_when=asyncio.FIRST_COMPLETED)
            second = None if tasks[0].done() else self._second(call, routes, attempt, wait)
            if second is None:
                return await tasks[0]
            second.race = race
            tasks.append(asyncio.create_task(second.run(priority, group)))
            return await self._first_answer(call, tasks, (attempt, second))
        finally:
            timer.cancel()
            for t in tasks:
                t.cancel()  # the loser (or both, if the request went away): Attempt.end frees its slot and probe
            await asyncio.gather(*tasks, return_exceptions=True)

    def _second(self, call: Call, routes: Candidates, attempt: Attempt, wait: float) -> Attempt | None:
        """The hedge: an attempt on the next usable route, admitted by its breaker and the retry budget."""
        rec, budget, now = call.record, self._p.budget, self._p.clock.monotonic()
        target = routes.after(attempt.route)
        if target is None:
            rec.decisions["hedge"] = {"after_s": round(wait, 6), "skipped": "no_other_route"}
            return None
        if not budget.decide(target.provider, failover=target.provider != attempt.provider, now=now).allowed:
            rec.decisions["hedge"] = {"after_s": round(wait, 6), "skipped": "retry_budget_exhausted"}
            self._p.events.retry_budget_exhausted(target.provider)
            return None
        second = self._admit(call, target)
        if second is None:
            rec.decisions["hedge"] = {"after_s": round(wait, 6), "skipped": "breaker_probing"}
            return None
        budget.spend(target.provider, now)
        routes.tried.append(target)
        rec.decisions["hedge"] = {"after_s": round(wait, 6), "provider": target.provider}
        self._p.events.hedge_sent(target.provider)
        return second

    async def _first_answer(
        self, call: Call, tasks: list[asyncio.Task[Reply]], attempts: tuple[Attempt, Attempt]
    ) -> Reply:
        """The reply of the first attempt to answer; when both fail, the first attempt's error."""
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task, attempt in zip(tasks, attempts, strict=True):
                if task in done and not task.cancelled() and task.exception() is None:
                    if attempt is attempts[1]:
                        call.record.decisions["hedge"]["won"] = True
                        self._p.events.hedge_won(attempt.provider)
                    call.record.provider = attempt.provider
                    return task.result()
        for task in tasks:  # both failed: the first attempt's error (a RaceLost only if nothing else is left)
            if not task.cancelled() and not isinstance(task.exception(), RaceLost):
                return task.result()
        return tasks[0].result()
