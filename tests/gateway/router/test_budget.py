from __future__ import annotations

from gateway.clock import FakeClock
from gateway.router.retrybudget import RetryBudget
from gateway.settings.router import BudgetSettings


def test_extras_capped_at_ratio_of_requests() -> None:
    clock = FakeClock()
    b = RetryBudget(BudgetSettings(ratio=0.2, window_s=10, min_per_window=0))
    for _ in range(100):
        b.on_request("a", clock.now())
    allowed = 0
    for _ in range(50):
        d = b.decide("a", failover=False, now=clock.now())
        if d.allowed:
            b.spend("a", clock.now())
            allowed += 1
        else:
            assert d.reason == "retry_budget_exhausted"
    assert allowed == 20


def test_min_per_window_allows_a_few_at_low_traffic() -> None:
    b = RetryBudget(BudgetSettings(ratio=0.2, min_per_window=3))
    results = []
    for _ in range(5):
        d = b.decide("a", failover=False, now=0.0)
        results.append(d.allowed)
        if d.allowed:
            b.spend("a", 0.0)
    assert results == [True, True, True, False, False]


def test_window_rolls_over() -> None:
    b = RetryBudget(BudgetSettings(ratio=0.0, min_per_window=1, window_s=10, buckets=10))
    b.spend("a", 0.0)
    assert not b.decide("a", failover=False, now=5.0).allowed
    assert b.decide("a", failover=False, now=10.5).allowed


def test_failover_to_healthy_provider_is_free_but_not_to_a_failing_one() -> None:
    b = RetryBudget(BudgetSettings(ratio=0.0, min_per_window=0, healthy_min_calls=5, healthy_failure_ratio=0.5))
    d = b.decide("b", failover=True, now=0.0)
    assert d.allowed and d.unconditional
    for _ in range(5):
        b.on_outcome("b", False, 0.0)
    assert not b.healthy("b", 0.0)
    assert not b.decide("b", failover=True, now=0.0).allowed
    assert not b.decide("a", failover=False, now=0.0).allowed  # retries are never free


def test_sustained_outage_keeps_calls_per_request_within_ratio() -> None:
    """Two providers both down: every request fails at its first provider and asks for an extra attempt."""
    b = RetryBudget(BudgetSettings(ratio=0.2, min_per_window=3))
    calls = requests = 0
    t = 0.0
    for i in range(2000):
        t += 0.01
        first, other = ("a", "b") if i % 2 else ("b", "a")
        b.on_request(first, t)
        requests += 1
        calls += 1
        b.on_outcome(first, False, t)
        d = b.decide(other, failover=True, now=t)
        if d.allowed:
            b.spend(other, t)
            calls += 1
            b.on_outcome(other, False, t)
    assert calls / requests <= 1.2
