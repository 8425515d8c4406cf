"""What a reloaded router keeps of its predecessor's state (docs/OPERATIONS.md, "Reload").

A reload builds a new :class:`~gateway.router.orchestrator.Router` from the new settings; before it serves,
:func:`carry_over` hands it the state of the one it replaces that still applies:

* breakers: the same object when ``router.breaker`` is unchanged (windows, states, probes), less the breakers of
  routes that no longer exist; otherwise new breakers that keep each surviving route's open state (its window
  starts over, measured under the new settings);
* the in-flight counts and queues of the load shedder: always the same object, given the new ``router.shedding``;
* the retry budget and the quota cool-offs: the same objects when their settings are unchanged, else new ones;
* latency averages: those of the routes that still exist, smoothed from now on with the new ``ewma_alpha``;
* TTFT samples (hedging's quantile): those of the routes that still exist, kept under the new ``router.hedging``
  bounds;
* chaos: the same object (rules set through ``PUT /admin/chaos`` and its random stream stay), given the file's
  ``router.chaos`` only when that section changed.

Requests in flight finish on the router they started with. Their shedder slots go back to the shared shedder.
Their breaker verdicts and probes go to the breakers they started with: the shared ones when ``router.breaker`` is
unchanged (a verdict on a route the reload removed is dropped, see ``Breakers.retain``), otherwise the old ones,
which nothing reads any more: the verdicts of attempts that started before a breaker-settings change are not
counted by the new breakers.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.router.attempt import Policies
from gateway.router.breaker import State
from gateway.router.breakers import Breakers
from gateway.router.latency import TtftWindow
from gateway.router.selection import LatencyEwma
from gateway.settings.router import RouterSettings


def carry_over(
    old: Policies,
    new: Policies,
    *,
    old_settings: RouterSettings,
    new_settings: RouterSettings,
    routes: Collection[tuple[str, str]],
) -> None:
    """Move into ``new`` (built from ``new_settings``, not serving yet) the state of ``old`` that still applies.
    ``routes``: the (provider, upstream model) pairs of the new configuration."""
    new.breakers = _breakers(old.breakers, new.breakers, old_settings, new_settings, routes)
    old.shedder.reconfigure(new_settings.shedding)
    new.shedder = old.shedder
    if old_settings.budget == new_settings.budget:
        new.budget = old.budget
    if old_settings.breaker.quota_cooloff_s == new_settings.breaker.quota_cooloff_s:
        new.cooloffs = old.cooloffs
    new.latency = _latency(old.latency, new_settings.scoring.ewma_alpha, routes)
    _ttft(old.ttft, new.ttft, routes)
    if old_settings.chaos != new_settings.chaos:
        old.chaos.update(new_settings.chaos)
    new.chaos = old.chaos


def _breakers(
    old: Breakers,
    new: Breakers,
    old_settings: RouterSettings,
    new_settings: RouterSettings,
    routes: Collection[tuple[str, str]],
) -> Breakers:
    keys = {new.key(provider, model) for provider, model in routes}
    if old_settings.breaker == new_settings.breaker:
        old.retain(keys)
        return old
    if old_settings.breaker.per_model != new_settings.breaker.per_model:
        return new  # the keys mean something else now
    for key in old.states():
        if key in keys:
            b = old.get(key)
            state = State.OPEN if b.state is State.HALF_OPEN else b.state  # half-open is derived from open_until
            new.get(key).adopt(state, b.open_until, b.changed_at, now=b.changed_at)
    return new


def _latency(old: LatencyEwma, alpha: float, routes: Collection[tuple[str, str]]) -> LatencyEwma:
    kept = LatencyEwma(alpha)
    wanted = {f"{provider}/{model}" for provider, model in routes}
    kept.values.update((k, v) for k, v in old.values.items() if k in wanted)
    return kept


def _ttft(old: TtftWindow, new: TtftWindow, routes: Collection[tuple[str, str]]) -> None:
    wanted = {f"{provider}/{model}" for provider, model in routes}
    for key, samples in old.samples.items():
        if key in wanted:
            for at, seconds in samples:
                new.observe(key, at, seconds)
