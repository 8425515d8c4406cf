"""Deadlines and streams through the router, against the simulators on the virtual-time loop (no real waiting)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson

from gateway.adapters.base import OpenAICompatibleAdapter
from gateway.call import Call, Reply
from gateway.clock import run_virtual
from gateway.errors import DeadlineExceeded, GatewayError
from gateway.rng import Rng
from gateway.router.orchestrator import Router

from .conftest import make_call, profile, runtime, send, settings, sse_events

HANG = profile({"type": "outage", "start_s": 0, "mode": "hang"})
FAST_BREAKER = {"min_calls": 4, "failure_rate": 0.5, "consecutive_failures": 0, "cooloff_s": 5}
LONG_STREAM = {"base": "instant", "latency": {"inter-token-latency": 100}, "output": {"output-tokens": 50}}


def test_a_deadline_cut_timeout_is_a_504_and_never_counts_against_the_provider() -> None:
    async def main() -> None:
        rt, tr = runtime(settings({"breaker": FAST_BREAKER}), openai=HANG)
        for i in range(10):
            t0 = rt.clock.monotonic()
            call = make_call(rt, model="solo", n=i, headers={"x-request-timeout": "0.5"})
            r, _ = await send(rt, call)
            assert isinstance(r, DeadlineExceeded) and r.status == 504
            assert rt.clock.monotonic() - t0 == 0.5  # virtual time: exactly the client's deadline
            assert [(a.provider, a.outcome) for a in call.record.attempts] == [("openai", "deadline")]
            assert call.record.decisions["deadline_reached"] == "openai"
        key = rt.router.breakers.key("openai", "gpt-4o-mini")
        assert rt.router.breakers.peek(key) == "closed"
        assert rt.router.breakers.get(key).window(rt.clock.now()) == (0, 0)
        assert tr.calls["openai.sim"] == 10

    run_virtual(main())


def test_a_timeout_with_the_full_limit_counts_and_opens_the_breaker() -> None:
    s = settings({"breaker": FAST_BREAKER, "timeouts": {"first_byte_s": 1.0}, "retry": {"max_attempts": 1}})

    async def main() -> list[dict[str, object]]:
        rt, _ = runtime(s, openai=HANG)
        seen: list[dict[str, object]] = []
        for i in range(5):
            call = make_call(rt, model="solo", n=i)
            r, _ = await send(rt, call)
            assert isinstance(r, GatewayError) and r.status in (503, 504)
            seen += call.record.decisions.get("breaker", [])
        return seen

    seen = run_virtual(main())
    assert [(e["to"], e["reason"]) for e in seen] == [("open", "failure_rate")]


def test_the_deadline_ends_a_long_stream_with_an_error_event_and_no_done() -> None:
    async def main() -> tuple[Reply | GatewayError, bytes, Call, float, tuple[int, int]]:
        rt, _ = runtime(settings(), openai=LONG_STREAM)  # 50 tokens, 100 ms apart: a 5 s stream
        call = make_call(rt, model="solo", stream=True, headers={"x-request-timeout": "2"})
        t0 = rt.clock.monotonic()
        r, body = await send(rt, call)
        key = rt.router.breakers.key("openai", "gpt-4o-mini")
        return r, body, call, rt.clock.monotonic() - t0, rt.router.breakers.get(key).window(rt.clock.now())

    r, body, call, took, window = run_virtual(main())
    assert isinstance(r, Reply) and r.status == 200  # the status line was sent with the first chunk
    assert b"[DONE]" not in body and took == 2.0
    events = sse_events(body)
    assert events[-1]["error"]["code"] == "timeout" and set(events[-1]["error"]) == {"message", "type", "param", "code"}
    delivered = [e for e in events[:-1] if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert 15 <= len(delivered) < 50
    assert call.record.tokens_out == len(delivered)  # tokens delivered are accounted
    assert call.record.attempts[0].outcome == "deadline" and call.record.error_type == "deadline"
    assert window == (0, 0)  # no verdict on the provider


def test_a_stall_past_the_idle_limit_mid_stream_ends_with_an_error_event() -> None:
    stall = profile({"type": "slow_stream", "start_s": 0, "stall-after-tokens": 3, "stall-seconds": 30})

    async def main() -> tuple[bytes, Call, float]:
        rt, _ = runtime(settings({"timeouts": {"stream_idle_s": 2.0}}), openai=stall)
        call = make_call(rt, model="solo", stream=True)
        t0 = rt.clock.monotonic()
        _, body = await send(rt, call)
        return body, call, rt.clock.monotonic() - t0

    body, call, took = run_virtual(main())
    assert b"[DONE]" not in body and took == 2.0
    last = orjson.loads(body.split(b"\n\n")[-2].removeprefix(b"data: "))
    assert last["error"]["code"] == "timeout"
    assert call.record.tokens_out == 3 and call.record.attempts[0].outcome == "stream_timeout"
    assert len(call.record.attempts) == 1  # never retried once bytes reached the client


class DeadlineSeen:
    """The openai adapter, noting the event-loop deadline each call is given."""

    def __init__(self, inner: OpenAICompatibleAdapter) -> None:
        self.inner = inner
        self.deadlines: list[float | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, payload: dict[str, Any], **kw: Any) -> Any:
        self.deadlines.append(kw["deadline"])
        return await self.inner.complete(payload, **kw)


def test_a_call_after_a_queue_wait_is_given_its_request_deadline_not_a_later_one() -> None:
    """One provider slot, two requests with a 60 s deadline; the second waits 3 s in the queue. Both calls must be
    given the same event-loop deadline (the loop's clock is the router's here): a deadline counted from before the
    wait would let the second call's body run 3 s past it."""
    slow = {"base": "instant", "latency": {"time-to-first-token": 3000}}

    async def main() -> list[float | None]:
        s = settings({"shedding": {"provider_limit": 1, "queue_limit": 4, "max_queue_wait_s": 10}})
        rt, _ = runtime(s, openai=slow)
        seen = DeadlineSeen(rt.adapters["openai"])
        adapters = {**rt.adapters, "openai": cast(OpenAICompatibleAdapter, seen)}
        rt.router = Router(s, rt.catalog, adapters, rt.clock, Rng(s.seed).child("router"), store=rt.store)
        calls = [make_call(rt, model="solo", n=i, headers={"x-request-timeout": "60"}) for i in range(2)]
        await asyncio.gather(*(send(rt, c) for c in calls))
        return seen.deadlines

    first, second = run_virtual(main())
    assert first == 60.0 and second == 60.0


def test_queue_wait_and_backoff_stay_within_the_deadline() -> None:
    slow = {"base": "instant", "latency": {"time-to-first-token": 3000}}

    async def main() -> list[float]:
        s = settings({"shedding": {"provider_limit": 1, "queue_limit": 4, "max_queue_wait_s": 10}})
        rt, _ = runtime(s, openai=slow)
        took: list[float] = []

        async def one(i: int) -> None:
            t0 = rt.clock.monotonic()
            await send(rt, make_call(rt, model="solo", n=i, headers={"x-request-timeout": "1"}))
            took.append(rt.clock.monotonic() - t0)

        await asyncio.gather(*(one(i) for i in range(4)))
        return took

    assert max(run_virtual(main())) <= 1.0
