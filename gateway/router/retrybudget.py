"""Retry budget: extra upstream attempts are capped at a fraction of requests, per provider, over a rolling window.

An *extra* attempt is any attempt after a request's first (a retry of the same provider or a failover). Each
provider keeps, over ``window_s`` (in ``buckets`` slices):

* ``requests``: client requests whose first attempt went to it (deposits);
* ``extras``: extra attempts sent to it (withdrawals);
* ``ok`` / ``failed``: outcomes of all attempts sent to it (its health).

An extra attempt to provider P is allowed when ``extras(P) + 1 <= max(min_per_window, ratio * requests(P))``.
A failover to a *healthy* provider (fewer than ``healthy_min_calls`` outcomes in the window, or a failure ratio
below ``healthy_failure_ratio``) is always allowed, and charged like any other: a one-provider outage fails
over for every request, while in an outage of all providers the targets turn unhealthy within a few calls and the
extra attempts stay within ``ratio`` of the requests, so upstream calls per client request stay <= 1 + ratio
(1.2 by default) once traffic exceeds ``min_per_window / ratio`` requests per window.

Local to each replica: the ratio holds whatever the number of replicas, so it needs no sharing. Pure: time is
passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings.router import BudgetSettings

_REQ, _EXTRA, _OK, _FAIL = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    allowed: bool
    unconditional: bool = False  # a failover to a healthy provider: allowed whatever the balance
    reason: str = ""


class _Window:
    __slots__ = ("_counts", "_slots")

    def __init__(self, buckets: int) -> None:
        self._slots: list[int] = [-1] * buckets
        self._counts: list[list[int]] = [[0, 0, 0, 0] for _ in range(buckets)]

    def add(self, slot: int, field: int) -> None:
        i = slot % len(self._slots)
        if self._slots[i] != slot:
            self._slots[i] = slot
            self._counts[i] = [0, 0, 0, 0]
        self._counts[i][field] += 1

    def totals(self, slot: int) -> list[int]:
        out = [0, 0, 0, 0]
        n = len(self._slots)
        for s, c in zip(self._slots, self._counts, strict=True):
            if slot - n < s <= slot:
                for k in range(4):
                    out[k] += c[k]
        return out


class RetryBudget:
    def __init__(self, settings: BudgetSettings) -> None:
        self._s = settings
        self._slice = settings.window_s / settings.buckets
        self._windows: dict[str, _Window] = {}

    def _w(self, provider: str) -> _Window:
        w = self._windows.get(provider)
        if w is None:
            w = self._windows[provider] = _Window(self._s.buckets)
        return w

    def _slot(self, now: float) -> int:
        return int(now // self._slice)

    def on_request(self, provider: str, now: float) -> None:
        """A request's first attempt goes to ``provider``."""
        w = self._windows.get(provider) or self._w(provider)
        w.add(int(now // self._slice), _REQ)

    def on_outcome(self, provider: str, ok: bool, now: float) -> None:
        w = self._windows.get(provider) or self._w(provider)
        w.add(int(now // self._slice), _OK if ok else _FAIL)

    def healthy(self, provider: str, now: float) -> bool:
        t = self._w(provider).totals(self._slot(now))
        calls = t[_OK] + t[_FAIL]
        return calls < self._s.healthy_min_calls or t[_FAIL] / calls < self._s.healthy_failure_ratio

    def decide(self, provider: str, *, failover: bool, now: float) -> BudgetDecision:
        """May an extra attempt go to ``provider``? Pure: call :meth:`spend` when it is made."""
        if failover and self.healthy(provider, now):
            return BudgetDecision(True, unconditional=True, reason="healthy_failover")
        t = self._w(provider).totals(self._slot(now))
        allowance = max(float(self._s.min_per_window), self._s.ratio * t[_REQ])
        if t[_EXTRA] + 1 <= allowance:
            return BudgetDecision(True, reason="within_budget")
        return BudgetDecision(False, reason="retry_budget_exhausted")

    def spend(self, provider: str, now: float) -> None:
        self._w(provider).add(self._slot(now), _EXTRA)

    def snapshot(self, provider: str, now: float) -> dict[str, int]:
        t = self._w(provider).totals(self._slot(now))
        return {"requests": t[_REQ], "extras": t[_EXTRA], "ok": t[_OK], "failed": t[_FAIL]}
