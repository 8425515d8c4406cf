"""The router: the terminal stage, where every resilience policy is composed, in this order (docs/ROUTING.md):

1. deadline      the client's ``X-Request-Timeout`` may shorten the request deadline        deadline.py
2. group         task rules may send the request to another model group                      selection.py
3. pin           ``X-Provider-Pin`` restricts the request to one provider                    selection.py
4. input check   guardrails refuse a banned word in the messages (400)                       guardrails.py
5. global shed   the router's in-flight limit, lowest priorities first (503)                 shedding.py
6. order         weighted or scored order of the group's routes                              selection.py
7. breakers      shared states refreshed (cached); open / quota-exhausted routes skipped;    breakers.py
                 none left -> 503 + Retry-After
8. per attempt   breaker admission (half-open probes) -> provider slot (queue or shed) ->    shedding.py, chaos.py,
                 limits cut to the deadline -> chaos -> adapter call within the deadline     deadline.py
9. on failure    deadline reached? -> retry decision -> retry budget -> deadline -> backoff  retry.py, budget.py
10. on success   guardrails on the answer; streams relayed by relay.py (mid-stream errors and the deadline end
                 a stream with an SSE error event)

Every decision is written to ``call.record`` (attempts, retries, breaker_states, decisions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.adapters import errors as ue
from gateway.adapters.base import AttemptTimeouts, OpenAICompatibleAdapter
from gateway.call import Call, Reply, finish_with
from gateway.catalog import ModelCatalog
from gateway.clock import Clock
from gateway.config import ConfigError, ModelGroup, Route, Settings
from gateway.errors import DeadlineExceeded, GatewayError, ModelNotFound, Unavailable
from gateway.observability.events import NullEvents
from gateway.requestlog import Attempt
from gateway.rng import Rng
from gateway.router import retry
from gateway.router.breaker import State, Transition
from gateway.router.breakers import Breakers, RedisBreakerStore
from gateway.router.budget import RetryBudget
from gateway.router.chaos import Chaos, Injection, injected_error
from gateway.router.client_errors import client_error
from gateway.router.cooloff import QuotaCooloffs
from gateway.router.deadline import AttemptLimits, DeadlineReached, request_deadline, within
from gateway.router.events import BreakerEventsListener, RouterEvents
from gateway.router.guardrails import Guardrails
from gateway.router.relay import Relay
from gateway.router.selection import LatencyEwma, order_scored, order_weighted, pinned_provider, resolve_group
from gateway.router.shedding import LoadShedder, Shed


class Router:
    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        adapters: Mapping[str, OpenAICompatibleAdapter],
        clock: Clock,
        rng: Rng,
        *,
        state: Any = None,
        events: RouterEvents | None = None,
    ) -> None:
        r = settings.router
        self._s = r
        self._settings = settings
        self._catalog = catalog
        self._adapters = adapters
        self.clock = clock
        self._groups = {g.name: g for g in settings.models}
        for name in [*r.groups, *(rule.group for rule in r.task_rules)]:
            if name not in self._groups:
                raise ConfigError(f"router: unknown model group {name!r}")
        for rule in r.task_rules:
            if rule.model is not None:
                try:
                    catalog.resolve(rule.model)
                except ModelNotFound:
                    raise ConfigError(f"router: task rule for unknown model {rule.model!r}") from None
        self.events: RouterEvents = events or NullEvents()
        store = None
        if state is not None and r.breaker.shared:
            origin = rng.child("breaker-origin").hex_id(4)
            store = RedisBreakerStore(state, prefix=settings.quota.key_prefix, origin=origin)
        self.breakers = Breakers(
            r.breaker,
            clock,
            store=store,
            listeners=[BreakerEventsListener(self.events)],
            on_store_failure=self.events.state_store_failure,
        )
        self.budget = RetryBudget(r.budget)
        self.shedder = LoadShedder(r.shedding, clock, on_queue_depth=self.events.queue_depth)
        self.chaos = Chaos(r.chaos, rng.child("chaos"))
        self.guardrails = Guardrails(r.guardrails)
        self.latency = LatencyEwma(r.scoring.ewma_alpha)
        self._select_rng = rng.child("select")
        self._retry_rng = rng.child("retry")
        self.cooloffs = QuotaCooloffs(r.breaker.quota_cooloff_s)
        self.limits = AttemptLimits(r.timeouts)
        self._relay = Relay(self)

    # -- readiness -----------------------------------------------------------------------------------------
    def provider_states(self) -> dict[str, str]:
        return self.breakers.provider_states(self._adapters)

    def exhausted_providers(self) -> list[str]:
        return self.cooloffs.providers(self.clock.monotonic())

    # -- the stage -----------------------------------------------------------------------------------------
    async def __call__(self, call: Call) -> Reply:
        assert call.body is not None and call.payload is not None
        rec = call.record
        call.deadline = request_deadline(call.started, call.deadline, call.headers, self._s.timeouts)
        task = call.headers.get(self._s.task_header)
        default = self._catalog.resolve(call.body.model)
        group, rule = resolve_group(call.body.model, task, self._s.task_rules, self._groups, default)
        if rule is not None:
            rec.decisions["task_rule"] = {"rule": rule, "task": task, "group": group.name}
        known = self._adapters.keys()
        pinned = pinned_provider(call.headers, self._s.pin_headers, call.consumer, known, group)
        self.guardrails.check_input(call.payload)
        priority = call.consumer.priority if call.consumer is not None else 1
        try:
            self.shedder.enter(priority)
        except Shed as s:
            raise self.shed(call, s) from None
        try:
            reply = await self._route(call, group, pinned, priority)
        except BaseException:
            self.shedder.leave()
            raise
        if reply.stream is None:  # the upstream answered in full: the slot is free now
            self.shedder.leave()
            return reply
        return finish_with(call, reply, self._leave)

    async def _leave(self) -> None:
        self.shedder.leave()

    def shed(self, call: Call, s: Shed) -> Unavailable:
        call.record.outcome = "shed"
        call.record.decisions["shed"] = s.reason
        self.events.shed(s.reason)
        return Unavailable(
            "The gateway is overloaded; the request was shed. Retry after the indicated time.",
            code="overloaded",
            headers={"retry-after": str(s.retry_after_s)},
        )

    def _order(self, group: ModelGroup) -> tuple[str, list[Route]]:
        policy = self._s.groups.get(group.name)
        if policy is not None and policy.strategy == "scored":
            weights = policy.weights or self._s.scoring
            return "scored", order_scored(group.routes, self.latency.values, self._settings.prices, weights)
        return "weighted", order_weighted(group.routes, self._select_rng)

    def _usable(self, route: Route, mono: float, now: float) -> str | None:
        """Why the route cannot be tried at ``mono`` (monotonic) / ``now`` (epoch), or None."""
        if self.cooloffs.active(route.provider, mono):
            return "insufficient_quota"
        if self.breakers.peek(self.breakers.key(route.provider, route.model), now) is State.OPEN:
            return "breaker_open"
        return None

    def note(self, call: Call, event: Transition | None) -> None:
        if event is not None:
            call.record.decisions.setdefault("breaker", []).append(event.to_dict())

    async def _route(self, call: Call, group: ModelGroup, pinned: str | None, priority: int) -> Reply:
        rec = call.record
        clock, breakers = self.clock, self.breakers
        strategy, order = self._order(group)
        keys = [breakers.key(r.provider, r.model) for r in order]
        mono = clock.monotonic()
        stale = breakers.stale(keys, mono)
        if stale:  # at most once per cache_s and key: one round trip to the state store
            for event in await breakers.fetch(stale):
                self.note(call, event)
            mono = clock.monotonic()
        rec.decisions["route"] = {"group": group.name, "strategy": strategy, "order": [r.provider for r in order]}
        if pinned is not None:
            rec.decisions["pinned"] = pinned
            order = [r for r in order if r.provider == pinned]
        now = clock.now()
        rec.breaker_states.update({k: str(breakers.peek(k, now)) for k in keys})
        skipped = {r.provider: why for r in order if (why := self._usable(r, mono, now)) is not None}
        candidates = [r for r in order if r.provider not in skipped]
        if skipped:
            rec.decisions["skipped"] = skipped
        if not candidates:
            raise self._none_available(call, group, pinned, order)
        tried: list[Route] = []
        probing: list[Route] = []  # passed over: half-open with every probe taken (never offered twice)
        route = candidates[0]
        self.budget.on_request(route.provider, mono)
        last: ue.UpstreamError | None = None
        while True:
            key = breakers.key(route.provider, route.model)
            allowed, moved = breakers.admit(key, clock.now())
            self.note(call, moved)
            if not allowed:  # half-open and its probes are taken
                skipped[route.provider] = "breaker_probing"
                rec.decisions["skipped"] = skipped
                probing.append(route)
                nxt = self._next(candidates, [*tried, *probing], route)
                if nxt is None:
                    if last is not None:
                        raise self._fail(call, last)
                    raise self._none_available(call, group, pinned, order)
                route = nxt
                continue
            tried.append(route)
            try:
                return await self._attempt(call, route, key, priority, group.name)
            except ue.UpstreamError as exc:
                last = exc
            except Shed as s:
                nxt = self._next(candidates, tried, route)
                if nxt is None:
                    raise self.shed(call, s) from None
                rec.decisions.setdefault("provider_shed", []).append(route.provider)
                route = nxt
                continue
            if isinstance(last, DeadlineReached):
                rec.decisions["deadline_reached"] = route.provider
                raise self._fail(call, last)
            nxt = self._next(candidates, tried, route)
            decision = retry.decide(
                last,
                settings=self._s.retry,
                attempts_made=len(tried),
                retries_made=rec.retries,
                stream_started=False,
                failover_available=nxt is not None,
                rng=self._retry_rng,
            )
            steps = rec.decisions.setdefault("retry_decisions", [])
            if decision.action == "give_up":
                steps.append({"action": "give_up", "reason": decision.reason})
                raise self._fail(call, last)
            target = nxt if decision.action == "failover" and nxt is not None else route
            now = clock.monotonic()
            budget = self.budget.decide(target.provider, failover=target.provider != route.provider, now=now)
            steps.append(
                {
                    "action": decision.action,
                    "reason": decision.reason,
                    "provider": target.provider,
                    "delay_s": round(decision.delay_s, 6),
                    "budget": budget.reason,
                }
            )
            if not budget.allowed:
                rec.decisions["retry_budget_exhausted"] = target.provider
                self.events.retry_budget_exhausted(target.provider)
                raise self._fail(call, last)
            if now + decision.delay_s >= call.deadline:
                rec.decisions["deadline_stopped_retry"] = True
                raise self._fail(call, last)
            self.budget.spend(target.provider, now)
            if decision.delay_s > 0:
                await clock.sleep(decision.delay_s)
            rec.retries += 1
            route = target

    def _next(self, candidates: list[Route], tried: list[Route], current: Route) -> Route | None:
        mono, now = self.clock.monotonic(), self.clock.now()
        for r in candidates:
            if r is not current and r not in tried and self._usable(r, mono, now) is None:
                return r
        return None

    def _none_available(self, call: Call, group: ModelGroup, pinned: str | None, order: list[Route]) -> Unavailable:
        keys = [self.breakers.key(r.provider, r.model) for r in order]
        wait = self.breakers.retry_after(keys)
        quota_wait = self.cooloffs.wait({r.provider for r in order}, self.clock.monotonic())
        if quota_wait is not None and not wait:
            wait = quota_wait
        headers = {"retry-after": str(max(1, math.ceil(wait)))}
        call.record.outcome = "error"
        if pinned is not None:
            quota = self.cooloffs.active(pinned, self.clock.monotonic())
            why = "insufficient_quota cool-off" if quota else "circuit breaker is open"
            return Unavailable(f"The pinned provider {pinned!r} is unavailable: its {why}.", headers=headers)
        return Unavailable(
            f"No provider for model {group.name!r} is available (circuit breakers open); retry later.",
            headers=headers,
        )

    def _fail(self, call: Call, exc: ue.UpstreamError) -> GatewayError:
        call.record.outcome = "error"
        return client_error(exc)

    # -- one attempt ---------------------------------------------------------------------------------------
    async def _attempt(self, call: Call, route: Route, key: str, priority: int, group: str) -> Reply:
        assert call.body is not None and call.payload is not None
        rec = call.record
        provider = route.provider
        clock = self.clock
        t0 = mono = clock.monotonic()
        if not self.shedder.try_acquire(provider):  # wait in the provider's queue
            try:
                await self.shedder.acquire(provider, priority, max_wait_s=call.deadline - t0)
            except BaseException:
                self.breakers.release(key)
                raise
            mono = clock.monotonic()
        try:
            limits = self.limits.at(call.deadline, mono)
        except DeadlineExceeded:
            self.shedder.release(provider)
            self.breakers.release(key)
            rec.decisions["deadline_reached"] = provider
            raise
        attempt = Attempt(provider=provider, model=route.model, started=clock.now())
        rec.attempts.append(attempt)
        rec.provider = provider
        handed_over = False
        try:
            consumer = call.consumer.name if call.consumer is not None else None
            injection = self.chaos.decide(provider, route.model, consumer, group=group)
            if injection is not None:
                limits = await self._inject(call, provider, attempt, injection, limits)
                mono = clock.monotonic()
            adapter = self._adapters[provider]
            headers = call.attributes.get("upstream_headers", {})
            args: dict[str, Any] = {"model": route.model, "request_id": call.request_id, "headers": headers}
            # The adapter's own waits (headers within first_byte_s, then the JSON body within first_byte_s or an
            # error body within idle_s) are cut to the time left; only when their sum could outlast the deadline
            # does the attempt need a timer of its own (with the default limits, 2 x 30 s against a 60 s deadline,
            # every attempt of a real process needs one: some time has passed since arrival).
            left = call.deadline - mono
            worst = limits.first_byte_s + (
                limits.idle_s if call.body.stream else max(limits.first_byte_s, limits.idle_s)
            )
            if call.body.stream:
                opening = adapter.open_stream(call.payload, timeouts=limits, **args)
                stream = await (opening if worst <= left else within(opening, call.deadline, clock, provider))
                reply = await self._relay.start(call, route, key, attempt, stream, t0, limits)  # head: bounded
                handed_over = True
                return reply
            completing = adapter.complete(call.payload, timeouts=limits, **args)
            done = await (completing if worst <= left else within(completing, call.deadline, clock, provider))
        except ue.UpstreamError as exc:
            attempt.duration_s = clock.monotonic() - t0
            failure = self.limits.deadline_or(exc, limits)
            attempt.outcome, attempt.status = failure.outcome, exc.status
            await self.attempt_failed(call, route, key, failure)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException:
            attempt.duration_s = clock.monotonic() - t0
            attempt.outcome = "cancelled"
            self.breakers.release(key)
            raise
        finally:
            if not handed_over:
                self.shedder.release(provider)
        attempt.duration_s = clock.monotonic() - t0
        attempt.status = 200
        await self.attempt_succeeded(call, route, key, attempt.duration_s)
        rec.ts_first_byte = clock.now()
        rec.tokens_in = done.prompt_tokens or 0
        rec.tokens_out = done.completion_tokens or 0
        if self.guardrails.active:
            self.relay_actions(call, self.guardrails.apply(done.body))
        return Reply(body=orjson.dumps(done.body))

    async def _inject(
        self, call: Call, provider: str, attempt: Attempt, injection: Injection, limits: AttemptTimeouts
    ) -> AttemptTimeouts:
        """Apply a chaos injection: wait (latency, timeout) and/or raise its fault; returns the limits left."""
        attempt.injected = True
        call.record.decisions.setdefault("chaos", []).append({"provider": provider, **injection.to_dict()})
        self.events.chaos_injected(injection.fault, provider)
        if injection.fault in ("latency", "timeout"):
            wait = injection.latency_s if injection.fault == "latency" else limits.first_byte_s
            await self.clock.sleep(min(wait, max(0.0, call.deadline - self.clock.monotonic())))
        if injection.fault != "latency":
            raise injected_error(provider, injection)
        if self.clock.monotonic() >= call.deadline:
            raise DeadlineReached(provider, "injected latency reached the request deadline")
        return self.limits.at(call.deadline, self.clock.monotonic())

    async def attempt_succeeded(self, call: Call, route: Route, key: str, ttfb_s: float | None) -> None:
        self.budget.on_outcome(route.provider, True, self.clock.monotonic())
        if ttfb_s is not None:
            self.latency.observe(f"{route.provider}/{route.model}", ttfb_s)
        self.note(call, await self.breakers.record(key, True))

    async def attempt_failed(self, call: Call, route: Route, key: str, exc: ue.UpstreamError) -> None:
        if isinstance(exc, DeadlineReached) or (
            isinstance(exc, ue.UpstreamClientError) and not retry.provider_refused(exc)
        ):
            self.breakers.release(key)  # the request's fault (or its deadline), not the provider's
            return
        if isinstance(exc, ue.UpstreamQuotaExhausted):
            self.breakers.release(key)
            self.cooloffs.mark(route.provider, self.clock.monotonic())
            call.record.decisions.setdefault("quota_exhausted", []).append(route.provider)
            return
        self.budget.on_outcome(route.provider, False, self.clock.monotonic())
        self.note(call, await self.breakers.record(key, False))

    def relay_actions(self, call: Call, actions: list[str]) -> None:
        if not actions:
            return
        call.record.decisions["guardrail"] = sorted({*call.record.decisions.get("guardrail", ()), *actions})
        for action in actions:
            rule, _, what = action.rpartition(".")
            self.events.guardrail_action(rule, what)


__all__ = ["Router", "client_error"]
