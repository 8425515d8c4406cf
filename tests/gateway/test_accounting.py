"""Accounting: estimated cost into the request record and the usage sink, once per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.accounting import AccountingStage, UsageTotals, cost_usd
from gateway.call import Call, Reply
from gateway.config import Consumer, Price, hash_key
from gateway.errors import UpstreamFailed
from gateway.requestrecord import AttemptRecord, RequestRecord
from gateway.settings.quota import QuotaSettings
from tests.calls import build_call

PRICES = {
    "gpt-4o-mini": Price(input_per_1m=0.15, output_per_1m=0.60),
    "upstream-x": Price(input_per_1m=1.0, output_per_1m=2.0),
}


def make_call(model: str = "gpt-4o-mini") -> Call:
    return build_call(
        request_id="r",
        record=RequestRecord(request_id="r", ts_arrival=0.0, model=model, provider="openai"),
        deadline_s=1.0,
        consumer=Consumer(name="team", key_sha256=hash_key("k")),
        payload={"model": model},
    )


@pytest.mark.parametrize(
    ("models", "tin", "tout", "usd"),
    [
        (["gpt-4o-mini"], 1_000_000, 0, 0.15),
        (["gpt-4o-mini"], 2000, 1000, 0.0009),
        ([None, "upstream-x", "gpt-4o-mini"], 1000, 1000, 0.003),  # first priced name wins
        (["unpriced"], 1000, 1000, 0.0),
    ],
)
def test_cost(models: list[str | None], tin: int, tout: int, usd: float) -> None:
    assert cost_usd(PRICES, models, tin, tout) == pytest.approx(usd)


async def test_json_reply_is_accounted_by_upstream_model_first() -> None:
    sink = UsageTotals()
    call = make_call()

    async def next_(c: Call) -> Reply:
        c.record.attempts.append(AttemptRecord(provider="openai", model="upstream-x", started=0.0))
        c.record.tokens_in, c.record.tokens_out = 1000, 500
        return Reply(body=b"{}")

    await AccountingStage(PRICES, sink)(call, next_)
    assert call.record.cost_usd == 0.0, "a JSON reply is accounted once it is out, not before"
    await call.finish()  # what the edge does after sending the body
    assert call.record.cost_usd == pytest.approx(0.002)
    assert sink.totals == {("team", "openai", "gpt-4o-mini"): [1000, 500, pytest.approx(0.002)]}


async def test_stream_is_accounted_when_it_ends_even_when_cut() -> None:
    sink = UsageTotals()
    call = make_call()

    async def next_(c: Call) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            for _ in range(10):
                c.record.tokens_out += 1
                yield b"data: x\n\n"

        c.record.tokens_in = 100
        return Reply(stream=gen())

    reply = await AccountingStage(PRICES, sink)(call, next_)
    assert sink.totals == {}  # nothing before the end
    assert reply.stream is not None
    it: Any = aiter(reply.stream)
    for _ in range(3):
        await anext(it)
    await it.aclose()
    assert sink.totals[("team", "openai", "gpt-4o-mini")][:2] == [100, 3]
    assert call.record.cost_usd == pytest.approx((100 * 0.15 + 3 * 0.60) / 1e6)


@pytest.mark.parametrize(("usage", "priced_in"), [(False, 3 + 4 + 10), (True, 15)])
async def test_a_stream_without_usage_is_priced_with_the_estimated_prompt(usage: bool, priced_in: int) -> None:
    sink = UsageTotals()
    call = make_call()
    call.payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 40}]}

    async def next_(c: Call) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            for _ in range(4):
                c.record.tokens_out += 1
                yield b"data: x\n\n"
            if usage:
                c.record.tokens_in = 15

        return Reply(stream=gen())

    reply = await AccountingStage(PRICES, sink, estimates=QuotaSettings())(call, next_)
    assert reply.stream is not None
    assert len([c async for c in reply.stream]) == 4
    assert sink.totals[("team", "openai", "gpt-4o-mini")][:2] == [priced_in, 4]
    assert call.record.cost_usd == pytest.approx((priced_in * 0.15 + 4 * 0.60) / 1e6)
    assert call.record.tokens_in == (15 if usage else 0)  # the record keeps what the upstream reported
    assert ("accounting" in call.record.decisions) == (not usage)


async def test_a_failure_is_accounted_and_raised() -> None:
    sink = UsageTotals()

    async def next_(c: Call) -> Reply:
        raise UpstreamFailed("boom")

    with pytest.raises(UpstreamFailed):
        await AccountingStage(PRICES, sink)(make_call(), next_)
    assert sink.totals == {("team", "openai", "gpt-4o-mini"): [0, 0, 0.0]}
