"""The edge's ``CallFactory``: what a call and its record say of the request (built positionally for speed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from gateway.asgi import CallFactory
from gateway.clock import FakeClock
from gateway.rng import Rng


def _factory() -> tuple[CallFactory, FakeClock]:
    clock = FakeClock()
    settings = SimpleNamespace(
        router=SimpleNamespace(timeouts=SimpleNamespace(request_deadline_s=60.0)),
        server=SimpleNamespace(max_body_bytes=1024),
    )
    rt: Any = SimpleNamespace(clock=clock, settings=settings)
    return CallFactory(rt, "run-1", Rng(1).child("ids")), clock


def _scope(**extra: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/v1/x", "headers": [(b"x-request-id", b"req-abc")], **extra}


async def _nothing() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_call_says_what_the_request_and_the_clock_said() -> None:
    calls, clock = _factory()
    call = calls(_scope(query_string=b"a=1&b=%C3%A9"), _nothing)
    assert (call.request_id, call.method, call.path) == ("req-abc", "POST", "/v1/x")
    assert call.headers == {"x-request-id": "req-abc"}
    assert call.query == "a=1&b=%C3%A9"
    assert call.started == clock.monotonic() and call.deadline == clock.monotonic() + 60.0
    rec = call.record
    assert (rec.request_id, rec.ts_arrival, rec.run_id) == ("req-abc", clock.now(), "run-1")
    assert rec.attempts == [] and rec.decisions == {} and call.after_reply == []


def test_no_query_string_is_the_empty_query() -> None:
    calls, _ = _factory()
    assert calls(_scope(), _nothing).query == ""
    assert calls(_scope(query_string=b""), _nothing).query == ""


def test_the_body_comes_whole_from_one_message_or_several() -> None:
    calls, _ = _factory()
    parts = iter(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(parts)

    async def one() -> dict[str, Any]:
        return {"type": "http.request", "body": b"whole", "more_body": False}

    async def bodies() -> list[bytes]:
        return [await calls(_scope(), receive).receive_body(), await calls(_scope(), one).receive_body()]

    assert asyncio.run(bodies()) == [b"abcd", b"whole"]
