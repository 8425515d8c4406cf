"""Accounting: tokens and estimated cost per consumer, provider and model, when a reply is complete.

Cost = ``tokens_in * input_per_1m / 1e6 + tokens_out * output_per_1m / 1e6`` (USD) from ``Settings.prices``,
looked up by the upstream model of the last attempt, then by the model the client asked for; no price -> 0.
The result goes into ``call.record.cost_usd`` (the request log) and to a :class:`UsageSink` (budget-burn metrics).
Runs once per request: after the body of a JSON reply is sent (``call.after_reply``), at the end of a stream (cut
or cancelled streams included), or at once when a later stage raises. A stream that delivered tokens but never
reported its usage (cut, or cancelled by the client) is priced with the prompt estimated as the quota estimates it
(gateway/quota/estimate.py): the provider bills the prompt all the same. The estimate is noted in
``decisions.accounting.prompt_tokens_estimated``; ``tokens_in`` stays what the upstream reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.call import Call, Handler, Reply, finish_with
from gateway.config import Price
from gateway.quota.estimate import estimate
from gateway.settings.quota import QuotaSettings


class UsageSink(Protocol):
    def charged(
        self, consumer: str, provider: str, model: str, tokens_in: int, tokens_out: int, cost_usd: float
    ) -> None: ...


@dataclass(slots=True)
class UsageTotals:
    """A plain :class:`UsageSink` that sums per (consumer, provider, model): [tokens_in, tokens_out, cost]."""

    totals: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def charged(
        self, consumer: str, provider: str, model: str, tokens_in: int, tokens_out: int, cost_usd: float
    ) -> None:
        t = self.totals.setdefault((consumer, provider, model), [0, 0, 0.0])
        t[0] += tokens_in
        t[1] += tokens_out
        t[2] += cost_usd


def cost_usd(prices: Mapping[str, Price], models: list[str | None], tokens_in: int, tokens_out: int) -> float:
    for m in models:
        if m is not None and m in prices:
            p = prices[m]
            return (tokens_in * p.input_per_1m + tokens_out * p.output_per_1m) / 1_000_000
    return 0.0


def price_call(call: Call, prices: Mapping[str, Price], estimates: QuotaSettings | None) -> tuple[float, int]:
    """(the cost of the call as it stands, the prompt tokens it was priced with). Pure; the dollar budgets
    (gateway/budget/) settle with the same figure."""
    rec = call.record
    tokens_in = rec.tokens_in
    if tokens_in == 0 and rec.tokens_out > 0 and estimates is not None:  # no usage came: estimate
        tokens_in = estimate(call.payload, estimates).prompt
    upstream = rec.attempts[-1].model if rec.attempts else None
    requested = call.payload.get("model") if call.payload else None
    models = [upstream, rec.model, requested if isinstance(requested, str) else None]
    return cost_usd(prices, models, tokens_in, rec.tokens_out), tokens_in


class AccountingStage:
    def __init__(
        self, prices: Mapping[str, Price], sink: UsageSink | None = None, *, estimates: QuotaSettings | None = None
    ) -> None:
        self._prices = prices
        self._sink = sink
        self._estimates = estimates

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        try:
            reply = await next_(call)
        except BaseException:
            self._account(call)
            raise

        async def done() -> None:
            self._account(call)

        return finish_with(call, reply, done)

    def _account(self, call: Call) -> None:
        rec = call.record
        rec.cost_usd, tokens_in = price_call(call, self._prices, self._estimates)
        if tokens_in != rec.tokens_in:
            rec.decisions["accounting"] = {"prompt_tokens_estimated": tokens_in}
        upstream = rec.attempts[-1].model if rec.attempts else None
        if self._sink is not None and call.consumer is not None:
            self._sink.charged(
                call.consumer.name,
                rec.provider or "none",
                rec.model or upstream or "unknown",
                tokens_in,
                rec.tokens_out,
                rec.cost_usd,
            )
