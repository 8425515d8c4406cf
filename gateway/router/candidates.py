"""The routes a request may try, in order: the explicit iterator the router's attempt loop consumes.

:class:`Selector` turns a request into :class:`Candidates`:

1. group    task rules may send the request to another model group            (selection.resolve_group)
2. pin      ``X-Provider-Pin`` keeps the pinned provider's routes only          (selection.pinned_provider)
3. order    weighted draw or score order of the group's routes                  (selection.order_*)
4. skip     routes whose breaker is open or whose provider is in an ``insufficient_quota`` cool-off; the
            shared breaker states are refreshed first (at most once per ``cache_s`` and key, one round trip)

:class:`Candidates` then answers "which route next?" after each event of the loop: the first route, the next one
after a failure or a shed (an untried route still usable now), or the next one after a route was passed over
because its half-open breaker had every probe taken (never offered twice in a row). Each answer re-checks
breakers and cool-offs at the current time. Every choice is written to ``call.record.decisions``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping

from gateway.call import Call
from gateway.clock import Clock
from gateway.config import ModelGroup, Price, Route
from gateway.errors import Unavailable
from gateway.router.breaker import State
from gateway.router.breakers import Breakers
from gateway.router.cooloff import QuotaCooloffs
from gateway.router.selection import LatencyEwma, order_scored, order_weighted, pinned_provider, resolve_group
from gateway.settings.router import RouterSettings

Usable = Callable[[Route, float, float], str | None]
_OPEN = State.OPEN  # a global: a member read through ``State`` goes through the enum type's ``__getattr__``


class Candidates:
    """The usable routes of one request, in order, and which of them the loop has tried or passed over."""

    __slots__ = ("_clock", "_passed", "_routes", "_why_not", "group", "name", "order", "pinned", "skipped", "tried")

    def __init__(
        self,
        group: ModelGroup,
        pinned: str | None,
        order: list[Route],
        clock: Clock,
        why_not: Usable,
        skipped: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        """``skipped``: why routes of ``order`` cannot be tried now, when the caller knows (else asked of
        ``why_not`` at the clock's time). ``name``: the group's, when the caller has read it."""
        self.group = group
        self.name = group.name if name is None else name
        self.pinned = pinned
        self.order = order  # every route of the group that the pin allows, in the order drawn
        self._clock = clock
        self._why_not = why_not
        if skipped is None:
            skipped = _skipped(order, why_not, clock)
        self.skipped = skipped
        self._routes = [r for r in order if r.provider not in skipped] if skipped else order
        self.tried: list[Route] = []
        self._passed: list[Route] = []  # half-open with every probe taken when offered

    def first(self) -> Route | None:
        return self._routes[0] if self._routes else None

    def after(self, current: Route) -> Route | None:
        """The next route after ``current`` failed or was shed: one not tried yet and usable now."""
        return self._next(current, self.tried)

    def passed_over(self, current: Route) -> Route | None:
        """``current`` is half-open with every probe taken: the next route neither tried nor passed over."""
        self.skipped[current.provider] = "breaker_probing"
        self._passed.append(current)
        return self._next(current, [*self.tried, *self._passed])

    def _next(self, current: Route, excluded: list[Route]) -> Route | None:
        mono, now = self._clock.monotonic(), self._clock.now()
        for r in self._routes:
            if r is not current and r not in excluded and self._why_not(r, mono, now) is None:
                return r
        return None


def _skipped(order: list[Route], why_not: Usable, clock: Clock) -> dict[str, str]:
    """Why routes of ``order`` cannot be tried at the clock's time (a function of its own: the comprehension's
    cells would otherwise be made on every :class:`Candidates`)."""
    mono, now = clock.monotonic(), clock.now()
    return {r.provider: why for r in order if (why := why_not(r, mono, now)) is not None}


class Selector:
    """Model group, pin and route order of each request, from the router's settings and the live state."""

    def __init__(
        self,
        settings: RouterSettings,
        groups: Mapping[str, ModelGroup],
        providers: Collection[str],
        prices: Mapping[str, Price],
        *,
        clock: Clock,
        rng: random.Random,
        breakers: Breakers,
        cooloffs: QuotaCooloffs,
        latency: LatencyEwma,
    ) -> None:
        self._s = settings
        self._groups = groups
        self._providers = providers
        self._prices = prices
        self._clock = clock
        self._rng = rng
        self._breakers = breakers
        self._cooloffs = cooloffs
        self._latency = latency
        # What each request reads of its group, read once from the configuration's models.
        self._plans = {id(g): _Plan(g, settings, breakers) for g in groups.values()}
        self._lanes = {i: lane for plan in self._plans.values() for i, lane in plan.lanes.items()}
        self._task_header, self._task_rules = settings.task_header, settings.task_rules
        self._pin_headers = settings.pin_headers

    def group_and_pin(self, call: Call) -> tuple[ModelGroup, str | None]:
        """The model group that serves ``call`` (task rules applied) and the provider it pins, if any."""
        assert call.body is not None and call.group is not None
        group = call.group
        if self._task_rules:
            task = call.headers.get(self._task_header)
            group, rule = resolve_group(call.body.model, task, self._task_rules, self._groups, group)
            if rule is not None:
                call.record.decisions["task_rule"] = {"rule": rule, "task": task, "group": group.name}
        return group, pinned_provider(call.headers, self._pin_headers, call.consumer, self._providers, group)

    def lane(self, route: Route) -> tuple[str, str]:
        """``route``'s provider and breaker key (read once for the configured routes)."""
        lane = self._lanes.get(id(route))
        return lane if lane is not None else (route.provider, self._breakers.key(route.provider, route.model))

    async def candidates(self, call: Call, group: ModelGroup, pinned: str | None) -> Candidates:
        rec, breakers, clock = call.record, self._breakers, self._clock
        plan = self._plans.get(id(group)) or _Plan(group, self._s, breakers)
        lanes = plan.lanes
        if plan.single:  # the group's one route: its key and provider read already
            order, keys, providers = plan.routes, plan.keys, list(plan.providers)
        else:
            order, keys, providers = self._order(plan), [], []
            for r in order:
                provider, key = lanes[id(r)]
                keys.append(key)
                providers.append(provider)
        mono = clock.monotonic()
        stale = breakers.stale(keys, mono)
        if stale:  # at most once per cache_s and key: one round trip to the state store
            for event in await breakers.fetch(stale):
                rec.decisions.setdefault("breaker", []).append(event.to_dict())
            mono = clock.monotonic()
        rec.decisions["route"] = {"group": plan.name, "strategy": plan.strategy, "order": providers}
        now = clock.now()
        cooloffs, skipped, states = self._cooloffs, {}, rec.breaker_states
        for i, key in enumerate(keys):  # as _why_not, with the states read here
            state = breakers.peek(key, now)
            states[key] = str(state)
            provider = providers[i]
            if pinned is not None and provider != pinned:
                continue
            if cooloffs.active(provider, mono):
                skipped[provider] = "insufficient_quota"
            elif state is _OPEN:
                skipped[provider] = "breaker_open"
        if pinned is not None:
            rec.decisions["pinned"] = pinned
            order = [r for r in order if lanes[id(r)][0] == pinned]
        elif plan.single:
            order = list(order)
        found = Candidates(group, pinned, order, clock, self._why_not, skipped, plan.name)
        if skipped:
            rec.decisions["skipped"] = skipped
        return found

    def _order(self, plan: _Plan) -> list[Route]:
        if plan.weights is not None:
            return order_scored(plan.routes, self._latency.values, self._prices, plan.weights)
        return order_weighted(plan.routes, self._rng)

    def _why_not(self, route: Route, mono: float, now: float) -> str | None:
        """Why the route cannot be tried at ``mono`` (monotonic) / ``now`` (epoch), or None."""
        if self._cooloffs.active(route.provider, mono):
            return "insufficient_quota"
        if self._breakers.peek(self._breakers.key(route.provider, route.model), now) is State.OPEN:
            return "breaker_open"
        return None

    def none_available(self, routes: Candidates) -> Unavailable:
        """The 503 (with ``Retry-After``) when no route of ``routes`` can be tried."""
        keys = [self._breakers.key(r.provider, r.model) for r in routes.order]
        wait = self._breakers.retry_after(keys)
        mono = self._clock.monotonic()
        quota_wait = self._cooloffs.wait({r.provider for r in routes.order}, mono)
        if quota_wait is not None and not wait:
            wait = quota_wait
        headers = {"retry-after": str(max(1, math.ceil(wait)))}
        if routes.pinned is not None:
            quota = self._cooloffs.active(routes.pinned, mono)
            why = "insufficient_quota cool-off" if quota else "circuit breaker is open"
            return Unavailable(f"The pinned provider {routes.pinned!r} is unavailable: its {why}.", headers=headers)
        return Unavailable(
            f"No provider for model {routes.group.name!r} is available (circuit breakers open); retry later.",
            headers=headers,
        )


class _Plan:
    """What :meth:`Selector.candidates` reads of a model group, read once: its name, its routes, how they are
    ordered, and each route's provider and breaker key (by the route's identity)."""

    __slots__ = ("keys", "lanes", "name", "providers", "routes", "single", "strategy", "weights")

    def __init__(self, group: ModelGroup, settings: RouterSettings, breakers: Breakers) -> None:
        self.name = group.name
        self.routes = list(group.routes)
        policy = settings.groups.get(self.name)
        scored = policy is not None and policy.strategy == "scored"
        self.strategy = "scored" if scored else "weighted"
        self.weights = (policy.weights or settings.scoring) if policy is not None and scored else None
        self.single = len(self.routes) == 1 and not scored  # the order is the group's, nothing to draw
        self.lanes = {id(r): (r.provider, breakers.key(r.provider, r.model)) for r in self.routes}
        self.providers = [self.lanes[id(r)][0] for r in self.routes]  # in the group's order
        self.keys = [self.lanes[id(r)][1] for r in self.routes]
