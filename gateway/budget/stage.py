"""The dollar-budget stage, after the quota stage: reserve the request's worst-case cost in its key's and its
consumer's budgets before any provider is called (403 ``budget_exceeded`` if it does not fit), and replace it
with the real cost when the reply is complete: before a JSON reply goes out (so the client's next request, on any
replica, sees the real spend), at the end of a stream, or when a later stage raises.

Every call is bounded by the state store's one bound (``state.timeout_s``, gateway/store/) and counts for its
health. The state store failing (an error, no answer within the bound, or an outage already declared, when no
call is made): logged and counted like the quota's failures; with ``budget.failure_policy: closed`` (the default:
a dollar cap stays a cap) the budgeted request is refused with 503, with ``open`` it goes on unchecked. At most
``budget.max_store_calls`` calls per replica are in flight; a burst waits its turn outside the bound. A settle
that fails, or that comes during an outage, leaves the worst case charged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from redis.exceptions import RedisError

from gateway.accounting import price_call
from gateway.budget.dollars import Limit, Outcome, WorstCase, describe, headers, limits_of, nano, rejection, usd
from gateway.budget.redisbudgets import RedisBudgets
from gateway.call import Call, Handler, Reply, finish_with
from gateway.catalog import ModelCatalog
from gateway.clock import Clock
from gateway.config import Price
from gateway.errors import Unavailable
from gateway.quota.estimate import estimate
from gateway.settings.budget import BudgetSettings
from gateway.settings.quota import QuotaSettings
from gateway.store.statestore import StoreDown


class BudgetEvents(Protocol):
    def budget_spent(self, consumer: str, usd: float) -> None: ...

    def budget_rejected(self, scope: str, period: str) -> None: ...

    def store_error(self, op: str, error: str) -> None: ...


class BudgetStage:
    def __init__(
        self,
        budgets: RedisBudgets,
        *,
        catalog: ModelCatalog,
        worst: WorstCase,
        prices: Mapping[str, Price],
        quota: QuotaSettings,
        settings: BudgetSettings,
        clock: Clock,
        events: BudgetEvents,
    ) -> None:
        self._s = settings
        self._slots = asyncio.Semaphore(settings.max_store_calls)
        self._budgets = budgets
        self._catalog = catalog
        self._worst = worst
        self._prices = prices
        self._quota = quota
        self._clock = clock
        self._events = events

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        ident, consumer, body = call.identity, call.consumer, call.body
        if ident is None or consumer is None or body is None or call.payload is None:
            return await next_(call)
        limits = limits_of(ident.key_id, ident.key_budget, consumer.name, consumer.budget)
        if not limits:
            return await next_(call)
        worst = self._worst.nano(self._catalog.resolve(body.model).name, estimate(call.payload, self._quota))
        now_ms = int(self._clock.now() * 1000)
        decision: dict[str, object] = {"budgets": describe(limits), "reserved_usd": usd(worst)}
        call.record.decisions["budget"] = decision
        try:
            out, counters = await self._reserve(consumer.name, limits, worst, now_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            if not isinstance(exc, StoreDown):  # no call was made: not a failure of one
                self._events.store_error("budget_reserve", type(exc).__name__)
            decision["decision"] = "unchecked"
            if self._s.failure_policy == "closed":
                raise Unavailable(
                    "The budget state store is unavailable; the request was not attempted. Please retry shortly.",
                    headers={"retry-after": "1"},
                ) from None
            return await next_(call)
        if not out.admitted or out.handle is None:
            assert out.refused is not None
            decision["decision"] = "rejected"
            self._events.budget_rejected(limits[out.refused].scope, limits[out.refused].period)
            raise rejection(limits, out, worst, now_ms)
        decision["decision"] = "ok"
        call.response_headers.update(headers(limits, out.used, now_ms))
        handle = out.handle
        try:
            reply = await next_(call)
        except BaseException:
            await self._settle(call, consumer.name, limits, counters, handle)
            raise
        if reply.stream is None:
            await self._settle(call, consumer.name, limits, counters, handle)
            return reply

        async def done() -> None:
            await self._settle(call, consumer.name, limits, counters, handle)

        return finish_with(call, reply, done)

    async def _reserve(self, consumer: str, limits: list[Limit], worst: int, now_ms: int) -> tuple[Outcome, list[str]]:
        if not self._budgets.usable:  # down, or a call of this request failed: the policy answers
            raise StoreDown("the state store is down")
        async with self._slots:  # a burst queues here, outside the store's bound
            return await self._budgets.reserve(consumer, limits, worst, now_ms)

    async def _settle(self, call: Call, consumer: str, limits: list[Limit], counters: list[str], handle: str) -> None:
        cost, _ = price_call(call, self._prices, self._quota)
        try:
            if not self._budgets.usable:  # down, or a call of this request failed: the worst case stands
                raise StoreDown("the state store is down")
            async with self._slots:
                delta = await self._budgets.settle(consumer, counters, handle, nano(cost))
        except (RedisError, OSError, TimeoutError) as exc:
            if not isinstance(exc, StoreDown):
                self._events.store_error("budget_settle", type(exc).__name__)
            delta = None
        call.record.decisions["budget"]["charged_usd"] = cost
        call.record.decisions["budget"]["settled"] = delta is not None
        self._events.budget_spent(consumer, cost)
