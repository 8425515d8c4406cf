"""Which model group serves a request, and in which order its routes are tried.

* Task rules (``router.task_rules``): the first rule whose ``model`` (the name or alias asked for) and/or
  ``task`` (the ``X-Task`` header) match sends the request to another group.
* Pinning: ``X-Provider-Pin: <provider>`` (or the older ``X-Provider-Priority``) restricts the request to that
  provider; needs the consumer's ``pin`` permission (403), the provider must exist and serve the group (400).
* Order: ``weighted`` (default) draws a weighted random permutation of the routes from the seeded RNG (routes of
  weight 0 come last, as fallbacks); ``scored`` sorts by ``latency_weight * L + cost_weight * C`` where L and C
  are the route's latency EWMA and blended price min-max normalised over the group (lower is better). A route
  without a latency sample counts as latency 0 (so it is tried, and measured, before a measured one); a route
  without a price counts as price 0. Ties keep the group's order (weight 0 last).

Everything here is pure: inputs in, decision out.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence

from gateway.config import Consumer, ModelGroup, Price, Route
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.settings.router import ScoreWeights, TaskRule


def route_key(route: Route) -> str:
    return f"{route.provider}/{route.model}"


def resolve_group(
    requested: str,
    task: str | None,
    rules: Sequence[TaskRule],
    groups: Mapping[str, ModelGroup],
    default: ModelGroup,
) -> tuple[ModelGroup, int | None]:
    """The group for a request and the index of the rule that chose it (None: the catalog's own group)."""
    for i, rule in enumerate(rules):
        if (rule.model is None or rule.model == requested) and (rule.task is None or rule.task == task):
            return groups[rule.group], i
    return default, None


def pinned_provider(
    headers: Mapping[str, str],
    header_names: Sequence[str],
    consumer: Consumer | None,
    known: Collection[str],
    group: ModelGroup,
) -> str | None:
    value = None
    for name in header_names:
        value = headers.get(name)
        if value:
            break
    if not value:
        return None
    value = value.strip()
    if consumer is None or "pin" not in consumer.permissions:
        raise PermissionDenied("This API key may not pin a provider (needs the 'pin' permission).")
    if value not in known:
        raise InvalidRequest(f"Unknown provider {value!r} in the pin header.", param=header_names[0])
    if all(r.provider != value for r in group.routes):
        raise InvalidRequest(f"Provider {value!r} does not serve model {group.name!r}.", param=header_names[0])
    return value


def order_weighted(routes: Sequence[Route], rng: random.Random) -> list[Route]:
    """A weighted random permutation: each next route drawn with probability proportional to its weight."""
    if len(routes) == 1:  # nothing to draw
        return [routes[0]]
    pool = [r for r in routes if r.weight > 0]
    out: list[Route] = []
    while len(pool) > 1:
        total = sum(r.weight for r in pool)
        x = rng.random() * total
        for i, r in enumerate(pool):
            x -= r.weight
            if x < 0 or i == len(pool) - 1:
                out.append(pool.pop(i))
                break
    out.extend(pool)
    out.extend(r for r in routes if r.weight <= 0)
    return out


def blended_price(route: Route, prices: Mapping[str, Price]) -> float | None:
    for name in (route_key(route), route.model, route.provider):
        p = prices.get(name)
        if p is not None:
            return p.input_per_1m + p.output_per_1m
    return None


def _normalise(values: Sequence[float | None]) -> list[float]:
    """Min-max over the group, an unknown value counting as 0; all equal -> all 0."""
    vs = [0.0 if v is None else v for v in values]
    lo, hi = min(vs, default=0.0), max(vs, default=0.0)
    span = hi - lo
    return [0.0 if span == 0 else (v - lo) / span for v in vs]


def scores(
    routes: Sequence[Route],
    latency: Mapping[str, float],
    prices: Mapping[str, Price],
    weights: ScoreWeights,
) -> list[float]:
    lat = _normalise([latency.get(route_key(r)) for r in routes])
    cost = _normalise([blended_price(r, prices) for r in routes])
    return [weights.latency_weight * lat[i] + weights.cost_weight * cost[i] for i in range(len(routes))]


def order_scored(
    routes: Sequence[Route],
    latency: Mapping[str, float],
    prices: Mapping[str, Price],
    weights: ScoreWeights,
) -> list[Route]:
    s = scores(routes, latency, prices, weights)
    ranked = sorted(range(len(routes)), key=lambda i: (routes[i].weight <= 0, s[i], -routes[i].weight, i))
    return [routes[i] for i in ranked]


class LatencyEwma:
    """Exponentially weighted moving average of time to first byte, per route."""

    def __init__(self, alpha: float) -> None:
        self._alpha = alpha
        self.values: dict[str, float] = {}

    def observe(self, key: str, seconds: float) -> None:
        old = self.values.get(key)
        self.values[key] = seconds if old is None else old + self._alpha * (seconds - old)
