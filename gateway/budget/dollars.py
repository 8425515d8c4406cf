"""Dollar budgets, the pure part: which budgets apply, their periods, the worst case a request may cost, and what
a decision looks like to a client. No I/O.

Money is counted in integer nano-dollars (1e-9 USD) on the state store, so every replica adds and compares the
same integers: a token of a model priced $0.15 per million is 150 nano-dollars. A request is admitted only if its
worst-case cost fits in every budget that applies (``used + worst <= limit``), so spend never passes a budget.

Periods are UTC: the day (``d:<day number>``) and the calendar month (``m:<YYYYMM>``), each resetting at its
UTC midnight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.config import ModelGroup, Price
from gateway.errors import BudgetExceeded
from gateway.quota.estimate import Estimate
from gateway.quota.replies import go_duration
from gateway.settings.budget import Budget

NANO = 1_000_000_000
DAY_MS = 86_400_000
Period = Literal["day", "month"]


def nano(usd: float) -> int:
    return round(usd * NANO)


def usd(n: int) -> float:
    return n / NANO


def _month_start_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def period_of(period: Period, now_ms: int) -> tuple[str, int]:
    """(the period's key suffix, milliseconds until it resets)."""
    if period == "day":
        day = now_ms // DAY_MS
        return f"d:{day}", (day + 1) * DAY_MS - now_ms
    t = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    nxt = _month_start_ms(t.year + (t.month == 12), t.month % 12 + 1)
    return f"m:{t.year:04d}{t.month:02d}", nxt - now_ms


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget counter: a scope (``key`` or ``consumer``), its name, a period, and the limit."""

    scope: Literal["key", "consumer"]
    name: str  # key id or consumer name
    period: Period
    limit: int  # nano-dollars

    def suffix(self, now_ms: int) -> str:
        return f"usd:{self.scope}:{self.name}:{period_of(self.period, now_ms)[0]}"


def limits_of(key_id: str, key_budget: Budget | None, consumer: str, consumer_budget: Budget | None) -> list[Limit]:
    """Every budget counter that applies, the key's first. Empty: no dollar budget for this request."""
    out: list[Limit] = []
    scopes: tuple[tuple[Literal["key", "consumer"], str, Budget | None], ...] = (
        ("key", key_id, key_budget),
        ("consumer", consumer, consumer_budget),
    )
    for scope, name, b in scopes:
        if b is None:
            continue
        if b.usd_per_day is not None:
            out.append(Limit(scope, name, "day", nano(b.usd_per_day)))
        if b.usd_per_month is not None:
            out.append(Limit(scope, name, "month", nano(b.usd_per_month)))
    return out


class WorstCase:
    """The most a request can cost: its estimated prompt at the highest input price, and all the completion tokens
    it may ask for at the highest output price, among the models its group can route to (and the names it is
    asked by). A model without a price costs nothing: a budget cannot bound what it cannot price."""

    def __init__(self, groups: Sequence[ModelGroup], prices: Mapping[str, Price]) -> None:
        self._per_group: dict[str, tuple[float, float]] = {}
        for g in groups:
            names = [r.model for r in g.routes] + [g.name, *g.aliases]
            known = [prices[n] for n in names if n in prices]
            self._per_group[g.name] = (
                max((p.input_per_1m for p in known), default=0.0),
                max((p.output_per_1m for p in known), default=0.0),
            )

    def nano(self, group: str, est: Estimate) -> int:
        inp, out = self._per_group.get(group, (0.0, 0.0))
        return math.ceil((est.prompt * inp + est.completion * out) * 1000)  # per 1M tokens -> nano-dollars


@dataclass(frozen=True, slots=True)
class Outcome:
    """A budget check: admitted (``handle`` set, ``used`` after the reservation) or refused at ``refused``."""

    admitted: bool
    handle: str | None
    used: tuple[int, ...]  # per limit: spend after this check (admitted) or as found (refused)
    refused: int | None = None  # index of the first limit that could not take the request


def _money(n: int) -> str:
    return f"{usd(n):.6f}".rstrip("0").rstrip(".") if n else "0"


def headers(limits: Sequence[Limit], used: Sequence[int], now_ms: int) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-usd-{day,month}``: the tightest budget of each period."""
    h: dict[str, str] = {}
    for period in ("day", "month"):
        rows = [(lim.limit - u, lim) for lim, u in zip(limits, used, strict=True) if lim.period == period]
        if not rows:
            continue
        remaining, lim = min(rows, key=lambda r: r[0])
        h[f"x-ratelimit-limit-usd-{period}"] = _money(lim.limit)
        h[f"x-ratelimit-remaining-usd-{period}"] = _money(max(0, remaining))
        h[f"x-ratelimit-reset-usd-{period}"] = go_duration(period_of(period, now_ms)[1])
    return h


def rejection(limits: Sequence[Limit], out: Outcome, worst: int, now_ms: int) -> BudgetExceeded:
    assert out.refused is not None
    lim = limits[out.refused]
    used = out.used[out.refused]
    reset_ms = period_of(lim.period, now_ms)[1]
    reset_at = datetime.fromtimestamp((now_ms + reset_ms) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = f"API key {lim.name}" if lim.scope == "key" else f"consumer {lim.name}"
    per = "daily" if lim.period == "day" else "monthly"
    if worst > lim.limit:
        msg = (
            f"This request may cost up to ${_money(worst)}, more than the {per} budget of {who} (${_money(lim.limit)})."
            " Lower max_tokens (or the prompt) to run it."
        )
    else:
        msg = (
            f"Budget exceeded: the {per} budget of {who} is ${_money(lim.limit)}, ${_money(used)} is spent or "
            f"reserved, and this request may cost up to ${_money(worst)}. It resets at {reset_at} "
            f"(in {go_duration(reset_ms)})."
        )
    h = headers(limits, out.used, now_ms)
    h["x-should-retry"] = "false"
    return BudgetExceeded(msg, headers=h)


def describe(limits: Sequence[Limit]) -> list[dict[str, Any]]:
    return [{"scope": lim.scope, "period": lim.period, "limit_usd": usd(lim.limit)} for lim in limits]
