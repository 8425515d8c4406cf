"""The pure part of dollar budgets: periods, which budgets apply, the worst case, headers and the refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.budget.dollars import Limit, Outcome, Period, WorstCase, headers, limits_of, nano, period_of, rejection
from gateway.config import ModelGroup, Price, Route
from gateway.quota.estimate import Estimate
from gateway.settings.budget import Budget


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("period", "now", "suffix", "reset_ms"),
    [
        ("day", "2026-12-03T23:59:59", "d:20790", 1000),
        ("day", "2026-12-04T00:00:00", "d:20791", 86_400_000),
        ("month", "2026-12-31T23:00:00", "m:202612", 3_600_000),
        ("month", "2027-01-01T00:00:00", "m:202701", 31 * 86_400_000),
        ("month", "2028-02-28T00:00:00", "m:202802", 2 * 86_400_000),  # a leap year
    ],
)
def test_periods_are_utc_days_and_calendar_months(period: Period, now: str, suffix: str, reset_ms: int) -> None:
    assert period_of(period, ms(now)) == (suffix, reset_ms)


def test_the_keys_budgets_come_first_then_the_consumers() -> None:
    got = limits_of("key_1", Budget(usd_per_day=0.01), "team", Budget(usd_per_day=5, usd_per_month=100))
    assert got == [
        Limit("key", "key_1", "day", 10_000_000),
        Limit("consumer", "team", "day", 5 * 10**9),
        Limit("consumer", "team", "month", 100 * 10**9),
    ]
    assert limits_of("key_1", None, "team", None) == []


def test_the_worst_case_takes_the_dearest_route() -> None:
    group = ModelGroup(
        name="chat", routes=[Route(provider="a", model="cheap"), Route(provider="b", model="dear")], aliases=["c"]
    )
    prices = {"cheap": Price(input_per_1m=1, output_per_1m=2), "dear": Price(input_per_1m=3, output_per_1m=10)}
    worst = WorstCase([group], prices)
    assert worst.nano("chat", Estimate(prompt=100, completion=50)) == 100 * 3000 + 50 * 10_000
    assert worst.nano("unpriced", Estimate(prompt=100, completion=50)) == 0
    assert nano(0.01) == 10_000_000


def test_headers_show_the_tightest_budget_of_each_period() -> None:
    limits = [Limit("key", "k", "day", nano(1.0)), Limit("consumer", "c", "day", nano(2.0))]
    h = headers(limits, [nano(0.25), nano(1.9)], ms("2026-12-03T18:00:00"))
    assert h == {
        "x-ratelimit-limit-usd-day": "2",
        "x-ratelimit-remaining-usd-day": "0.1",
        "x-ratelimit-reset-usd-day": "6h0m0s",
    }


def test_the_refusal_names_the_budget_and_when_it_resets() -> None:
    limits = [Limit("key", "key_1", "day", nano(0.01))]
    err = rejection(limits, Outcome(False, None, (nano(0.0095),), refused=0), nano(0.001), ms("2026-12-03T18:00:00"))
    assert (err.status, err.type, err.code) == (403, "insufficient_quota", "budget_exceeded")
    assert err.message == (
        "Budget exceeded: the daily budget of API key key_1 is $0.01, $0.0095 is spent or reserved, and this "
        "request may cost up to $0.001. It resets at 2026-12-04T00:00:00Z (in 6h0m0s)."
    )
    assert err.headers["x-should-retry"] == "false" and err.headers["x-ratelimit-remaining-usd-day"] == "0.0005"
    too_big = rejection(limits, Outcome(False, None, (0,), refused=0), nano(0.02), ms("2026-12-03T18:00:00"))
    assert "more than the daily budget" in too_big.message and "max_tokens" in too_big.message
