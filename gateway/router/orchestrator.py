"""The router: the terminal stage, where every resilience policy is composed, in this order (docs/ROUTING.md):

1. deadline      the client's ``X-Request-Timeout`` may shorten the request deadline        deadline.py
2. group         task rules may send the request to another model group                      candidates.py
3. pin           ``X-Provider-Pin`` restricts the request to one provider                    candidates.py
4. input check   guardrails refuse a banned word in the messages (400)                       guardrails.py
5. global shed   the router's in-flight limit, lowest priorities first (503)                 shedding.py
6. candidates    weighted or scored order of the group's routes; shared breaker states       candidates.py
                 refreshed (cached); open / quota-exhausted routes skipped; none -> 503
7. the loop      for each route the candidates offer: breaker admission (half-open probes)   this module
                 -> an :class:`Attempt` (attempt.py: slot, limits, chaos, adapter call,
                 guardrails, the relay of a stream, and its one ``end``)
8. on failure    deadline reached? -> retry decision -> retry budget -> deadline -> backoff  retry.py, retrybudget.py

Every decision is written to ``call.record`` (attempts, retries, breaker_states, decisions).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from gateway.adapters.base import OpenAICompatibleAdapter
from gateway.adapters.upstreamerrors import UpstreamClientError, UpstreamError
from gateway.call import Call, Reply, finish_with
from gateway.catalog import ModelCatalog
from gateway.clock import Clock
from gateway.config import ConfigError, Route, Settings
from gateway.errors import GatewayError, ModelNotFound, Unavailable
from gateway.observability.events import NullEvents
from gateway.rng import Rng
from gateway.router import retry
from gateway.router.attempt import Attempt, Policies, note_transition
from gateway.router.breakers import Breakers, RedisBreakerStore
from gateway.router.candidates import Candidates, Selector
from gateway.router.carry import carry_over
from gateway.router.chaos import Chaos
from gateway.router.client_errors import client_error
from gateway.router.cooloff import QuotaCooloffs
from gateway.router.deadline import AttemptLimits, DeadlineReached, request_deadline
from gateway.router.guardrails import Guardrails
from gateway.router.hedge import Hedger
from gateway.router.latency import TtftWindow
from gateway.router.relay import Relay
from gateway.router.retrybudget import RetryBudget
from gateway.router.routerevents import BreakerEventsListener, RouterEvents
from gateway.router.selection import LatencyEwma
from gateway.router.shedding import LoadShedder, Shed
from gateway.settings.router import RouterSettings
from gateway.store.statestore import StateStore


class Router:
    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        adapters: Mapping[str, OpenAICompatibleAdapter],
        clock: Clock,
        rng: Rng,
        *,
        store: StateStore | None = None,
        events: RouterEvents | None = None,
        previous: Router | None = None,
    ) -> None:
        """``previous``: the router this one replaces on a reload; its state that still applies is carried over
        (gateway/router/carry.py)."""
        r = self._settings = settings.router
        groups = {g.name: g for g in settings.models}
        _check_config(settings, catalog, groups.keys())
        self.events: RouterEvents = events or NullEvents()
        self.clock = clock
        breakers = _breakers(settings, clock, rng, store, self.events)
        p = self.policies = _policies(r, adapters, breakers, clock, rng, self.events)
        if previous is not None:
            routes = {(route.provider, route.model) for g in settings.models for route in g.routes}
            carry_over(previous.policies, p, old_settings=previous._settings, new_settings=r, routes=routes)
        self._selector = Selector(
            r,
            groups,
            adapters.keys(),
            settings.prices,
            clock=clock,
            rng=rng.child("select"),
            breakers=p.breakers,
            cooloffs=p.cooloffs,
            latency=p.latency,
        )
        self._hedger = Hedger(r.hedging, p, self._admit)
        self._retry_rng = rng.child("retry")
        self._providers = list(adapters)
        self._deadline_header = r.timeouts.deadline_header

    # -- state, for readiness and the admin API ------------------------------------------------------------
    @property
    def breakers(self) -> Breakers:
        return self.policies.breakers

    @property
    def shedder(self) -> LoadShedder:
        return self.policies.shedder

    @property
    def chaos(self) -> Chaos:
        return self.policies.chaos

    def provider_states(self) -> dict[str, str]:
        return self.breakers.provider_states(self._providers)

    def exhausted_providers(self) -> list[str]:
        return self.policies.cooloffs.providers(self.clock.monotonic())

    # -- the stage -----------------------------------------------------------------------------------------
    async def __call__(self, call: Call) -> Reply:
        assert call.body is not None and call.payload is not None
        if self._deadline_header in call.headers:  # the client may shorten the deadline
            call.deadline = request_deadline(call.started, call.deadline, call.headers, self._settings.timeouts)
        group, pinned = self._selector.group_and_pin(call)
        self.policies.guardrails.check_input(call.payload)
        priority = call.consumer.priority if call.consumer is not None else 1
        shedder = self.policies.shedder
        try:
            shedder.enter(priority)
        except Shed as s:
            raise self._shed(call, s) from None
        try:
            reply = await self._route(call, await self._selector.candidates(call, group, pinned), priority)
        except BaseException:
            shedder.leave()
            raise
        if reply.stream is None:  # the upstream answered in full: the slot is free now
            shedder.leave()
            return reply
        return finish_with(call, reply, self._leave)

    async def _leave(self) -> None:
        self.policies.shedder.leave()

    def _shed(self, call: Call, s: Shed) -> Unavailable:
        call.record.decisions["shed"] = s.reason
        self.events.shed(s.reason)
        shed = Unavailable(
            "The gateway is overloaded; the request was shed. Retry after the indicated time.",
            code="overloaded",
            headers={"retry-after": str(s.retry_after_s)},
        )
        shed.outcome = "shed"
        return shed

    async def _route(self, call: Call, routes: Candidates, priority: int) -> Reply:
        """Attempts over ``routes`` until one answers: failover, retries within the budget and the deadline."""
        route = routes.first()
        if route is None:
            raise self._none_available(call, routes)
        self.policies.budget.on_request(self._selector.lane(route)[0], self.clock.monotonic())
        last: UpstreamError | None = None
        while True:
            attempt = self._admit(call, route)
            if attempt is None:  # half-open, and its probes are taken
                nxt = routes.passed_over(route)
                call.record.decisions["skipped"] = routes.skipped
                if nxt is None:
                    raise self._fail(call, last) if last is not None else self._none_available(call, routes)
                route = nxt
                continue
            routes.tried.append(route)
            try:
                if self._hedger.off:  # no hedging configured: the attempt itself, without the hedger's frame
                    return await attempt.run(priority, routes.name)
                return await self._hedger.run(call, routes, attempt, priority)
            except UpstreamError as exc:
                last = exc
            except Shed as s:
                nxt = routes.after(route)
                if nxt is None:
                    raise self._shed(call, s) from None
                call.record.decisions.setdefault("provider_shed", []).append(route.provider)
                route = nxt
                continue
            route = await self._again(call, routes, route, last)

    def _admit(self, call: Call, route: Route) -> Attempt | None:
        """An attempt at ``route`` when its breaker admits one (a half-open one admits its probes only)."""
        breakers = self.policies.breakers
        key = self._selector.lane(route)[1]
        allowed, moved = breakers.admit(key, self.clock.now())
        if moved is not None:
            note_transition(call, moved)
        return Attempt(self.policies, call, route, key) if allowed else None

    async def _again(self, call: Call, routes: Candidates, route: Route, last: UpstreamError) -> Route:
        """After ``route`` failed with ``last``: the route of the next attempt (after its backoff), or raise."""
        rec = call.record
        if isinstance(last, DeadlineReached):
            rec.decisions["deadline_reached"] = route.provider
            raise self._fail(call, last)
        nxt = routes.after(route)
        decision = retry.decide(
            last,
            settings=self._settings.retry,
            attempts_made=len(routes.tried),
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
        now = self.clock.monotonic()
        budget = self.policies.budget
        verdict = budget.decide(target.provider, failover=target.provider != route.provider, now=now)
        steps.append(
            {
                "action": decision.action,
                "reason": decision.reason,
                "provider": target.provider,
                "delay_s": round(decision.delay_s, 6),
                "budget": verdict.reason,
            }
        )
        if not verdict.allowed:
            rec.decisions["retry_budget_exhausted"] = target.provider
            self.events.retry_budget_exhausted(target.provider)
            raise self._fail(call, last)
        if now + decision.delay_s >= call.deadline:
            rec.decisions["deadline_stopped_retry"] = True
            raise self._fail(call, last)
        budget.spend(target.provider, now)
        if decision.delay_s > 0:
            await self.clock.sleep(decision.delay_s)
        rec.retries += 1
        return target

    def _none_available(self, call: Call, routes: Candidates) -> Unavailable:
        err = self._selector.none_available(routes)
        err.outcome = "error"
        return err

    def _fail(self, call: Call, exc: UpstreamError) -> GatewayError:
        if isinstance(exc, UpstreamClientError):  # its own words stay with the operator (the request log)
            call.record.decisions["upstream_error"] = {"status": exc.status, "message": exc.detail[:500]}
        err = client_error(exc)
        err.outcome = "error"  # the upstream's failure, even when it is a 4xx for the client
        return err


def _breakers(settings: Settings, clock: Clock, rng: Rng, store: StateStore | None, events: RouterEvents) -> Breakers:
    """The circuit breakers, shared through the state store when ``router.breaker.shared`` is on."""
    r = settings.router
    shared = None
    if store is not None and r.breaker.shared:
        origin = rng.child("breaker-origin").hex_id(4)
        shared = RedisBreakerStore(store, prefix=settings.quota.key_prefix, origin=origin)
    return Breakers(
        r.breaker,
        clock,
        store=shared,
        listeners=[BreakerEventsListener(events)],
        on_store_failure=events.state_store_failure,
    )


def _policies(
    r: RouterSettings,
    adapters: Mapping[str, OpenAICompatibleAdapter],
    breakers: Breakers,
    clock: Clock,
    rng: Rng,
    events: RouterEvents,
) -> Policies:
    """What every attempt consults, one part per policy of ``router``'s settings."""
    guardrails = Guardrails(r.guardrails)
    return Policies(
        clock=clock,
        adapters=adapters,
        breakers=breakers,
        budget=RetryBudget(r.budget),
        shedder=LoadShedder(r.shedding, clock, on_queue_depth=events.queue_depth),
        cooloffs=QuotaCooloffs(r.breaker.quota_cooloff_s),
        latency=LatencyEwma(r.scoring.ewma_alpha),
        ttft=TtftWindow(r.hedging.max_samples, r.hedging.window_s),
        limits=AttemptLimits(r.timeouts),
        chaos=Chaos(r.chaos, rng.child("chaos")),
        guardrails=guardrails,
        events=events,
        relay=Relay(clock, guardrails, events),
        slow_call_s=r.breaker.slow_call_s,
    )


def _check_config(settings: Settings, catalog: ModelCatalog, groups: Collection[str]) -> None:
    r = settings.router
    for name in [*r.groups, *(rule.group for rule in r.task_rules)]:
        if name not in groups:
            raise ConfigError(f"router: unknown model group {name!r}")
    for rule in r.task_rules:
        if rule.model is not None:
            try:
                catalog.resolve(rule.model)
            except ModelNotFound:
                raise ConfigError(f"router: task rule for unknown model {rule.model!r}") from None
    known = {f"{route.provider}/{route.model}" for group in settings.models for route in group.routes}
    for name in r.hedging.routes:
        if name not in known:
            raise ConfigError(f"router: hedging for unknown route {name!r} (provider/model of a route)")
