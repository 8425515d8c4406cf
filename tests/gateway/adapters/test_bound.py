"""The limits of one upstream call, kept by one timer (gateway/adapters/bound.py): the head within
``first_byte_s``, the body within ``first_byte_s`` of the head (an error body within ``idle_s``), all of it
ended by the request deadline. Virtual time: each case checks which error ended the call, and when."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import pytest

from gateway.adapters.base import AttemptTimeouts, Completion, OpenAICompatibleAdapter
from gateway.adapters.upstreamerrors import DeadlineReached, UpstreamServerError, UpstreamTimeout
from gateway.clock import run_virtual
from gateway.transport import AsgiTransport

Message = MutableMapping[str, Any]
LIMITS = AttemptTimeouts(connect_s=1.0, first_byte_s=30.0, idle_s=15.0)
PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
ANSWER = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]})


def upstream(head_s: float, body_s: float, status: int = 200) -> Any:
    """An upstream that sends its head after ``head_s`` and its body ``body_s`` later."""

    async def app(scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        await receive()
        await asyncio.sleep(head_s)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await asyncio.sleep(body_s)
        body = ANSWER if status == 200 else b'{"error": {"message": "upstream broke"}}'
        await send({"type": "http.response.body", "body": body})

    return app


def call(head_s: float, body_s: float, *, deadline_in: float | None = None, status: int = 200) -> tuple[Any, float]:
    """(the completion or the error, the virtual seconds the call took)."""

    async def main() -> tuple[Any, float]:
        loop = asyncio.get_running_loop()
        adapter = OpenAICompatibleAdapter(
            "p", "http://up/v1", AsgiTransport({"http://up": upstream(head_s, body_s, status)})
        )
        t0 = loop.time()
        deadline = None if deadline_in is None else t0 + deadline_in
        try:
            out: Any = await adapter.complete(
                PAYLOAD, model="m", request_id="r", headers={}, timeouts=LIMITS, deadline=deadline
            )
        except Exception as exc:
            out = exc
        return out, loop.time() - t0

    return run_virtual(main())


def test_the_body_has_its_own_limit_counted_from_the_head() -> None:
    out, took = call(head_s=20, body_s=20)  # 40 s in all, more than first_byte_s, each wait within it
    assert isinstance(out, Completion)
    assert took == pytest.approx(40, abs=0.01)


def test_a_body_later_than_its_limit_is_a_timeout_at_that_limit() -> None:
    out, took = call(head_s=20, body_s=35)
    assert type(out) is UpstreamTimeout and "body did not arrive" in out.detail
    assert took == pytest.approx(50, abs=0.01)


def test_a_head_later_than_the_first_byte_limit_is_a_timeout() -> None:
    out, took = call(head_s=40, body_s=0)
    assert type(out) is UpstreamTimeout and "no response within 30s" in out.detail
    assert took == pytest.approx(30, abs=0.01)


@pytest.mark.parametrize(("head_s", "body_s", "deadline_in"), [(40, 0, 25), (20, 20, 35), (40, 0, 30), (20, 30, 50)])
def test_the_deadline_ends_any_wait_and_wins_a_tie(head_s: float, body_s: float, deadline_in: float) -> None:
    out, took = call(head_s=head_s, body_s=body_s, deadline_in=deadline_in)
    assert type(out) is DeadlineReached
    assert took == pytest.approx(deadline_in, abs=0.01)


def test_a_limit_earlier_than_the_deadline_is_the_providers_timeout() -> None:
    out, took = call(head_s=20, body_s=35, deadline_in=55)
    assert type(out) is UpstreamTimeout and "body did not arrive" in out.detail
    assert took == pytest.approx(50, abs=0.01)


def test_an_error_body_later_than_the_idle_limit_is_classified_without_it() -> None:
    out, took = call(head_s=1, body_s=20, status=500)
    assert type(out) is UpstreamServerError and out.detail == "HTTP 500"
    assert took == pytest.approx(16, abs=0.01)


def test_an_error_body_cut_by_the_deadline_is_the_deadline() -> None:
    out, took = call(head_s=1, body_s=20, deadline_in=10, status=500)
    assert type(out) is DeadlineReached
    assert took == pytest.approx(10, abs=0.01)


def test_another_cancellation_goes_on() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        adapter = OpenAICompatibleAdapter("p", "http://up/v1", AsgiTransport({"http://up": upstream(20, 0)}))
        task = asyncio.create_task(
            adapter.complete(PAYLOAD, model="m", request_id="r", headers={}, timeouts=LIMITS, deadline=loop.time() + 5)
        )
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.wait((task,))
        return task.cancelled()

    assert run_virtual(main())
