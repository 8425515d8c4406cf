"""The edge: a JSON reply's body goes out first, then the work the stages deferred (gateway/call.py)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import orjson
import pytest

from gateway.asgi import Edge
from gateway.call import Call, Guarded, Reply, finish_with
from gateway.clock import FakeClock
from gateway.observability.logs import EventLog
from gateway.routes import RouteTable
from tests.calls import build_call

SECRET = "prompt-text-0c1d"


def _call(scope: MutableMapping[str, Any], receive: Any) -> Call:
    return build_call(method=scope["method"], path=scope["path"])


def _edge(seen: list[str], *, failing_work: bool = False) -> tuple[Edge, io.StringIO]:
    async def handler(call: Call) -> Reply:
        async def inner() -> None:
            seen.append("inner work")
            if failing_work:
                raise KeyError(SECRET)

        async def outer() -> None:
            seen.append("outer work")

        reply = finish_with(call, Reply(body=b"{}"), inner)  # the innermost stage registers first
        return finish_with(call, reply, outer)

    buf = io.StringIO()
    fast = Edge(routes=_only(handler), calls=_call, log=EventLog(FakeClock(), stream=buf))
    return fast, buf


def _only(handler: Any) -> RouteTable:
    return RouteTable([("POST", "/v1/x", handler)], edge=lambda h: h)


SCOPE = {"type": "http", "method": "POST", "path": "/v1/x", "headers": []}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def test_the_body_goes_out_before_the_deferred_work_which_runs_innermost_first() -> None:
    seen: list[str] = []
    fast, _ = _edge(seen)

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(message["type"])

    await fast.serve(dict(SCOPE), _receive, send)
    assert seen == ["http.response.start", "http.response.body", "inner work", "outer work"]


async def test_the_deferred_work_runs_when_the_client_is_gone() -> None:
    seen: list[str] = []
    fast, _ = _edge(seen)

    async def send(message: MutableMapping[str, Any]) -> None:
        raise OSError("connection reset")

    with pytest.raises(OSError):
        await fast.serve(dict(SCOPE), _receive, send)
    assert seen == ["inner work", "outer work"]


async def test_a_failure_in_deferred_work_is_logged_without_its_message_and_the_rest_still_runs() -> None:
    seen: list[str] = []
    fast, buf = _edge(seen, failing_work=True)

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(message["type"])

    await fast.serve(dict(SCOPE), _receive, send)
    assert seen == ["http.response.start", "http.response.body", "inner work", "outer work"]
    line = orjson.loads(buf.getvalue())
    assert (line["event"], line["request_id"], line["error"]) == ("unhandled_error", "req-1", "KeyError")
    assert SECRET not in buf.getvalue()


async def test_deferred_work_runs_once() -> None:
    seen: list[str] = []
    call = _call(SCOPE, _receive)

    async def work() -> None:
        seen.append("work")

    finish_with(call, Reply(), work)
    await call.finish()
    await call.finish()
    assert seen == ["work"]


async def test_a_cancellation_in_deferred_work_wins_over_an_earlier_failure() -> None:
    """Work that failed must not hide a cancellation that came after it: the task still ends cancelled."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def handler(call: Call) -> Reply:
        async def failing() -> None:
            raise KeyError(SECRET)

        async def waiting() -> None:
            entered.set()
            await gate.wait()

        reply = finish_with(call, Reply(body=b"{}"), failing)
        return finish_with(call, reply, waiting)

    fast = Edge(routes=_only(handler), calls=_call, log=EventLog(FakeClock(), stream=io.StringIO()))

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    task = asyncio.create_task(fast.serve(dict(SCOPE), _receive, send))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_guarded_stream_closed_before_its_first_item_runs_its_unstarted_work() -> None:
    seen: list[str] = []

    async def gen() -> AsyncIterator[bytes]:
        try:
            yield b"a"
        finally:
            seen.append("generator finally")

    async def unstarted() -> None:
        seen.append("unstarted")

    never = Guarded(gen(), if_unstarted=unstarted)
    await never.aclose()
    assert seen == ["unstarted"]  # the generator's own finally never runs: it never started

    seen.clear()
    started = Guarded(gen(), if_unstarted=unstarted)
    assert await anext(started) == b"a"
    await started.aclose()
    await started.aclose()
    assert seen == ["generator finally"]


def _streaming_edge(stream: AsyncIterator[bytes]) -> Edge:
    async def handler(call: Call) -> Reply:
        return Reply(stream=stream)

    return Edge(routes=_only(handler), calls=_call, log=EventLog(FakeClock(), stream=io.StringIO()))


async def test_a_stream_goes_out_chunk_by_chunk_then_ends() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: [DONE]\n\n"

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        return {}

    await _streaming_edge(chunks()).serve(dict(SCOPE), receive, send)
    start, *body = sent
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert dict(start["headers"])[b"cache-control"] == b"no-cache"
    assert [(m["body"], m["more_body"]) for m in body] == [
        (b"data: 1\n\n", True),
        (b"data: [DONE]\n\n", True),
        (b"", False),
    ]


async def test_a_client_that_disconnects_stops_a_stream_waiting_for_its_upstream() -> None:
    """The upstream is silent; the client leaves: the stream is stopped at once, its ``finally`` runs, and the
    edge returns normally (the client has gone, there is nobody to answer)."""
    seen: list[str] = []
    gone = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            gone.set()  # the client leaves while the upstream thinks
            await asyncio.Event().wait()
            yield b"data: never\n\n"
        finally:
            seen.append("stream closed")

    bodies: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    await _streaming_edge(chunks()).serve(dict(SCOPE), receive, send)
    assert bodies == [b"data: 1\n\n"]
    assert seen == ["stream closed"]


async def test_a_socket_error_while_streaming_ends_the_stream_quietly() -> None:
    seen: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            seen.append("stream closed")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message.get("body"):
            raise OSError("connection reset by peer")

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    await _streaming_edge(chunks()).serve(dict(SCOPE), receive, send)
    assert seen == ["stream closed"]
