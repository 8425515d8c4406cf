"""The quota stage around a fake next stage: headers, rejections, reconcile for JSON, streams, cuts, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.call import Call, Reply
from gateway.clock import FakeClock
from gateway.config import Settings, hash_key, parse_settings
from gateway.errors import QuotaExhausted, RateLimited, UpstreamFailed
from gateway.quota.limiter import QuotaCounters, QuotaLimiter
from gateway.quota.stage import QuotaStage
from gateway.settings.quota import Limits
from tests.calls import build_call
from tests.gateway.quota.conftest import store_for

PROMPT = {"role": "user", "content": "x" * 40}  # 3 + 4 + 10 = 17 prompt tokens estimated


def settings(prefix: str, **limits: int) -> Settings:
    return parse_settings(
        {
            "tiers": {"default": {}, "small": limits},
            "consumers": [
                {"name": "team", "key_sha256": hash_key("k1"), "tier": "small"},
                {"name": "free", "key_sha256": hash_key("k2")},
            ],
            "providers": [{"name": "p", "kind": "openai", "base_url": "http://p/v1"}],
            "models": [{"name": "m", "routes": [{"provider": "p", "model": "m"}]}],
            "quota": {"key_prefix": prefix, "default_max_tokens": 20},
        }
    )


def make_call(s: Settings, consumer: str = "team", **payload: Any) -> Call:
    return build_call(
        request_id="r1",
        consumer=next(c for c in s.consumers if c.name == consumer),
        payload={"model": "m", "messages": [PROMPT], **payload},
    )


def stage(state: aioredis.Redis, s: Settings) -> tuple[QuotaStage, QuotaLimiter, FakeClock]:
    clock = FakeClock()
    events = QuotaCounters()
    lim = QuotaLimiter(store_for(state, events), s.quota, clock=clock, events=events)
    return QuotaStage(lim, s), lim, clock


def answer(tokens_in: int, tokens_out: int) -> Any:
    async def next_(call: Call) -> Reply:
        call.record.tokens_in, call.record.tokens_out = tokens_in, tokens_out
        return Reply(body=b"{}")

    return next_


async def used(lim: QuotaLimiter) -> tuple[int, int]:
    """(tokens in the TPM window, tokens today), read with a 1-token probe check that is then released."""
    d, r = await lim.check("team", 1, Limits(tpm=10**9, tpd=10**9))
    assert r is not None
    await lim.settle(r, 0)
    return d.tok_used - 1, d.day_used - 1


pytestmark = pytest.mark.redis


async def test_admitted_reply_carries_the_headers_and_is_reconciled(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, rpm=10, tpm=1000, tpd=10**9)
    st, lim, _ = stage(state_store, s)
    call = make_call(s, max_tokens=50)
    await st(call, answer(17, 5))
    assert call.after_reply == []  # settled before the reply goes out: its lease is free when the client has it
    assert call.response_headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "933",  # 17 + 50 reserved
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert call.record.decisions["quota"] == {
        "decision": "ok",
        "reserved": 67,
        "backend": "redis",
        "charged": 22,
        "settled": True,
        "day_used": 67,  # the daily budget's use after the check: the reservation
    }
    assert await used(lim) == (22, 22)


async def test_a_client_sending_one_request_at_a_time_never_meets_its_own_lease(
    state_store: aioredis.Redis, prefix: str
) -> None:
    """The lease of a JSON reply is released before the reply goes out: the next request, sent the moment the
    client has this answer, is admitted under ``max_concurrency: 1``."""
    s = settings(prefix, max_concurrency=1)
    st, _, _ = stage(state_store, s)
    for _ in range(5):
        reply = await st(make_call(s), answer(1, 1))  # nothing run after: what the client has, it has now
        assert reply.status == 200


async def test_rejections_raise_before_the_next_stage(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, rpm=1)
    st, _, _ = stage(state_store, s)
    await st(make_call(s), answer(1, 1))
    reached = []

    async def never(call: Call) -> Reply:
        reached.append(call)
        return Reply()

    with pytest.raises(RateLimited) as exc:
        await st(make_call(s), never)
    assert reached == []
    assert exc.value.type == "requests"
    assert exc.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert exc.value.message.startswith("Rate limit reached for m by consumer team on requests per min (RPM)")


async def test_daily_budget_spent_is_403(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, tpd=60)
    st, _, _ = stage(state_store, s)
    await st(make_call(s), answer(17, 20))  # 37 charged of 60
    with pytest.raises(QuotaExhausted) as exc:
        await st(make_call(s), answer(17, 20))  # 37 estimated: over
    assert "Used 37, Requested 37" in exc.value.message


async def test_unlimited_consumers_and_non_model_calls_pass_untouched(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, rpm=1)
    st, _, _ = stage(state_store, s)
    for _ in range(3):
        call = make_call(s, consumer="free")
        await st(call, answer(1, 1))
        assert call.response_headers == {} and "quota" not in call.record.decisions
    models = make_call(s)
    models.payload = None
    await st(models, answer(0, 0))
    assert "quota" not in models.record.decisions


async def test_a_later_stage_raising_settles_what_was_used(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, tpm=1000, tpd=10**9)
    st, lim, _ = stage(state_store, s)

    async def fails(call: Call) -> Reply:
        raise UpstreamFailed("upstream broke")

    call = make_call(s)
    with pytest.raises(UpstreamFailed):
        await st(call, fails)
    assert call.record.decisions["quota"]["charged"] == 0
    assert await used(lim) == (0, 0)


def streaming(chunks: int, *, usage: bool) -> Any:
    async def next_(call: Call) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            for _ in range(chunks):
                call.record.tokens_out += 1  # the router counts delivered tokens
                yield b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
            if usage:
                call.record.tokens_in = 17
            yield b"data: [DONE]\n\n"

        return Reply(stream=gen(), media_type="text/event-stream")

    return next_


async def test_a_finished_stream_is_charged_at_its_end(state_store: aioredis.Redis, prefix: str) -> None:
    s = settings(prefix, tpm=1000, tpd=10**9)
    st, lim, _ = stage(state_store, s)
    call = make_call(s, stream=True)
    reply = await st(call, streaming(8, usage=True))
    assert "charged" not in call.record.decisions["quota"]  # nothing settled before the stream ends
    assert reply.stream is not None
    assert len([c async for c in reply.stream]) == 9
    assert call.record.decisions["quota"]["charged"] == 17 + 8
    assert await used(lim) == (25, 25)


@pytest.mark.parametrize("delivered", [0, 1, 5])
async def test_a_client_disconnect_mid_stream_charges_what_was_sent(
    state_store: aioredis.Redis, prefix: str, delivered: int
) -> None:
    s = settings(prefix, tpm=1000, tpd=10**9)
    st, lim, _ = stage(state_store, s)
    call = make_call(s, stream=True, max_tokens=200)
    reply = await st(call, streaming(50, usage=True))
    assert reply.stream is not None
    it = aiter(reply.stream)
    for _ in range(delivered):
        await anext(it)
    await it.aclose()  # type: ignore[attr-defined]  # the stream is an async generator
    # cut before the usage chunk: the delivered tokens + the prompt estimate (none if nothing was delivered)
    expected = 17 + delivered if delivered else 0
    assert call.record.decisions["quota"]["charged"] == expected
    assert await used(lim) == (expected, expected)


async def test_no_day_counter_is_kept_for_a_consumer_without_a_daily_budget(
    state_store: aioredis.Redis, prefix: str
) -> None:
    s = settings(prefix, rpm=10)
    qs, lim, _ = stage(state_store, s)
    await qs(make_call(s), answer(10, 5))
    assert [k async for k in state_store.scan_iter(match=f"{prefix}:*tpd*")] == []
    await lim.stop()
