"""Providers that answered ``insufficient_quota``: skipped until a cool-off ends (``breaker.quota_cooloff_s``).

Retrying does not help against a spent budget, so the router fails over at once and stops sending to the
provider for the cool-off. Marking it again never shortens a running cool-off. Per replica (each replica learns
from its own answers). Pure: time is passed in (monotonic seconds).
"""

from __future__ import annotations

from collections.abc import Iterable


class QuotaCooloffs:
    def __init__(self, cooloff_s: float) -> None:
        self._cooloff_s = cooloff_s
        self._until: dict[str, float] = {}

    def mark(self, provider: str, now: float) -> None:
        self._until[provider] = max(self._until.get(provider, 0.0), now + self._cooloff_s)

    def active(self, provider: str, now: float) -> bool:
        until = self._until.get(provider)
        if until is None:
            return False
        if now < until:
            return True
        del self._until[provider]
        return False

    def wait(self, providers: Iterable[str], now: float) -> float | None:
        """Seconds until the first of ``providers`` in a cool-off leaves it; None when none is."""
        waits = [self._until[p] - now for p in providers if self.active(p, now)]
        return min(waits, default=None)

    def providers(self, now: float) -> list[str]:
        return sorted(p for p in list(self._until) if self.active(p, now))
