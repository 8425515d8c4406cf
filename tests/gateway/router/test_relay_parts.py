"""How the relay hands a stream's frames to the client: the chunks one upstream read brought go out together,
as one body part, except the head, which goes out as soon as it is read; a chunk whose next one is still to come
goes out at once, on its own; ``[DONE]`` goes with the last chunks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import fakeredis
import pytest

from gateway.adapters.sse import DONE
from gateway.clock import LoopClock, run_virtual
from gateway.rng import Rng
from gateway.runtime import build_runtime
from gateway.transport import AsgiTransport
from simulators.wire import Chunker
from tests.gateway.router.conftest import make_call, settings, sse_events

Message = MutableMapping[str, Any]


def _upstream(parts: list[bytes | float]) -> Callable[..., Awaitable[None]]:
    """An OpenAI-like upstream whose stream body is ``parts``: bytes to send, or seconds to wait."""

    async def app(
        scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[..., Awaitable[None]]
    ) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _events() -> list[bytes]:
    ch = Chunker("openai", "chatcmpl-up", 1, "gpt-4o-mini", True)
    return [ch.role(), ch.token("one"), ch.token(" two"), ch.token(" three"), ch.end("stop", 5, 3)]


async def _relayed(parts: list[bytes | float]) -> list[tuple[bytes, float]]:
    """Each body part the client gets, with the virtual time it got it."""
    clock = LoopClock()
    s = settings()
    transport = AsgiTransport({"http://openai.sim": _upstream(parts)})
    rt = build_runtime(s, clock=clock, rng=Rng(s.seed), state=fakeredis.FakeAsyncRedis(), transport=transport)
    call = make_call(rt, model="solo", stream=True)
    t0 = clock.monotonic()
    reply = await rt.router(call)
    assert reply.stream is not None
    return [(part, clock.monotonic() - t0) async for part in reply.stream]


def test_the_head_goes_out_at_once_then_the_chunks_that_arrived_with_it_and_done_as_one_part() -> None:
    got = run_virtual(_relayed([b"".join(_events())]))
    parts = [part for part, _ in got]
    assert len(parts) == 2 and parts[-1].endswith(DONE)
    assert [e["choices"][0]["delta"].get("content") for e in sse_events(parts[0])] == ["", "one"]  # the head
    assert [e["choices"][0]["delta"].get("content") for e in sse_events(parts[1])] == [" two", " three", None]
    body = b"".join(parts)
    assert {e["id"] for e in sse_events(body)} == {"chatcmpl-req-0"} and body.count(b"\n\n") == 6


def test_a_chunk_whose_next_is_still_to_come_goes_out_at_once() -> None:
    role, one, two, three, end = _events()
    together = run_virtual(_relayed([role + one + two + three + end]))
    got = run_virtual(_relayed([role, one, 1.0, two, 1.0, three, 1.0, end]))
    assert b"".join(p for p, _ in got) == b"".join(p for p, _ in together)  # the same bytes either way
    assert [(sse_events(p)[-1]["choices"][0]["delta"].get("content"), t) for p, t in got] == [
        ("one", 0.0),  # the head: the role chunk held back until the first content, then both at once
        (" two", 1.0),
        (" three", 2.0),
        (None, 3.0),  # the finish chunk, and [DONE] with it
    ]
    assert got[-1][0].endswith(DONE)


@pytest.mark.parametrize("skipped", [b"data: null\n\n", b"data: [1, 2]\n\n"])
def test_a_chunk_followed_only_by_an_event_the_stream_skips_goes_out_before_the_next_read(skipped: bytes) -> None:
    """The event after " two" is one the stream skips (not an object): " two" must not wait with it for the
    upstream's next read, five seconds later."""
    role, one, two, three, end = _events()
    got = run_virtual(_relayed([role + one, two + skipped, 5.0, three + end]))
    assert [(sse_events(p)[-1]["choices"][0]["delta"].get("content"), t) for p, t in got] == [
        ("one", 0.0),
        (" two", 0.0),
        (None, 5.0),  # " three", the finish chunk and [DONE]
    ]
