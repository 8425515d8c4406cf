"""Gateway-side chaos: faults injected into upstream attempts, by rule and percentage, from the seeded RNG.

Off unless ``router.chaos.enabled``; rules change at run time through the admin API (gateway/router/routeradmin.py).
A rule matches an attempt when each of its ``provider`` / ``model`` / ``consumer`` is unset or equal (``model``
matches the upstream model name or the model group the client asked for); every matching rule draws once (so the
draws do not depend on earlier outcomes) and the first hit wins. Faults:

* ``latency``: wait ``latency_s`` (capped by the deadline), then make the real attempt;
* ``error``: fail the attempt with HTTP ``status`` as if the provider had answered it;
* ``abort``: fail with a connection error;
* ``timeout``: wait for the attempt's first-byte limit, then fail with a timeout.

Every injected fault is tagged: ``AttemptRecord.injected`` and ``decisions["chaos"]`` in the request log.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from gateway.settings.router import ChaosRule, ChaosSettings


@dataclass(frozen=True, slots=True)
class Injection:
    rule: int
    fault: str
    latency_s: float = 0.0
    status: int = 503

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"rule": self.rule, "fault": self.fault}
        if self.fault == "latency":
            d["latency_s"] = self.latency_s
        if self.fault == "error":
            d["status"] = self.status
        return d


def _matches(rule: ChaosRule, provider: str, model: str, consumer: str | None, group: str | None) -> bool:
    return (
        (rule.provider is None or rule.provider == provider)
        and (rule.model is None or rule.model == model or rule.model == group)
        and (rule.consumer is None or rule.consumer == consumer)
    )


class Chaos:
    def __init__(self, settings: ChaosSettings, rng: random.Random) -> None:
        self.settings = settings
        self.enabled = settings.enabled  # read per attempt: a plain attribute, not the settings model's
        self._rng = rng

    def update(self, settings: ChaosSettings) -> None:
        self.settings = settings
        self.enabled = settings.enabled

    def decide(self, provider: str, model: str, consumer: str | None, *, group: str | None = None) -> Injection | None:
        if not self.settings.enabled:
            return None
        hit: Injection | None = None
        for i, rule in enumerate(self.settings.rules):
            if not _matches(rule, provider, model, consumer, group):
                continue
            draw = self._rng.random() * 100.0
            if hit is None and draw < rule.percent:
                hit = Injection(i, rule.fault, rule.latency_s, rule.status)
        return hit


def injected_error(provider: str, injection: Injection) -> UpstreamError:
    """The classified error an ``error`` / ``abort`` / ``timeout`` injection stands for."""
    note = "injected by gateway chaos"
    if injection.fault == "abort":
        return UpstreamConnectError(provider, f"connection aborted ({note})")
    if injection.fault == "timeout":
        return UpstreamTimeout(provider, f"no first byte ({note})")
    status = injection.status
    if status == 429:
        return UpstreamRateLimited(provider, f"rate limited ({note})", retry_after=None)
    if status >= 500:
        return UpstreamServerError(provider, f"HTTP {status} ({note})", status=status)
    return UpstreamClientError(provider, f"HTTP {status} ({note})", status=status)
