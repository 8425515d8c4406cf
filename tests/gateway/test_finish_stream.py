"""The work stages defer until a stream is over (``finish_with`` on a streamed reply): when it runs, in what
order, and that every stage's work is taken on by the one guarded stream instead of a wrapper per stage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.call import Guarded, Reply, finish_with
from tests.calls import build_call


def _stream(seen: list[str], *, fail: bool = False) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            yield b"a"
            if fail:
                raise ValueError("upstream broke")
            yield b"b"
        finally:
            seen.append("stream finally")

    return gen()


def _work(seen: list[str], name: str, *, fail: bool = False) -> Callable[[], Awaitable[None]]:
    async def done() -> None:
        seen.append(name)
        if fail:
            raise KeyError(name)

    return done


def _staged(seen: list[str], inner: AsyncIterator[bytes], *, failing: str | None = None) -> Reply:
    """Three stages deferring work on one stream, innermost first."""

    async def unstarted() -> None:
        seen.append("unstarted")

    reply = Reply(stream=Guarded(inner, if_unstarted=unstarted))
    for name in ("router", "accounting", "telemetry"):
        reply = finish_with(build_call(), reply, _work(seen, name, fail=name == failing))
    return reply


async def test_the_work_runs_innermost_first_after_the_stream_ends_and_before_its_end_is_seen() -> None:
    seen: list[str] = []
    reply = _staged(seen, _stream(seen))
    assert isinstance(reply.stream, Guarded)
    out = []
    async for chunk in reply.stream:
        out.append(chunk)
        seen.append(f"chunk {chunk.decode()}")
    seen.append("end seen")
    assert out == [b"a", b"b"]
    assert seen == ["chunk a", "chunk b", "stream finally", "router", "accounting", "telemetry", "end seen"]


async def test_the_work_of_a_stream_that_fails_runs_and_the_failure_goes_on() -> None:
    seen: list[str] = []
    reply = _staged(seen, _stream(seen, fail=True))
    assert reply.stream is not None
    with pytest.raises(ValueError, match="upstream broke"):
        async for _ in reply.stream:
            pass
    assert seen == ["stream finally", "router", "accounting", "telemetry"]


async def test_a_stream_closed_midway_runs_its_work_once() -> None:
    seen: list[str] = []
    reply = _staged(seen, _stream(seen))
    assert isinstance(reply.stream, Guarded)
    assert await anext(reply.stream) == b"a"
    await reply.stream.aclose()
    await reply.stream.aclose()
    assert seen == ["stream finally", "router", "accounting", "telemetry"]


async def test_a_stream_closed_before_its_first_chunk_runs_its_unstarted_work_then_the_rest() -> None:
    seen: list[str] = []
    reply = _staged(seen, _stream(seen))
    assert isinstance(reply.stream, Guarded)
    await reply.stream.aclose()
    assert seen == ["unstarted", "router", "accounting", "telemetry"]


async def test_a_failing_piece_of_work_does_not_stop_the_next_and_its_error_goes_on() -> None:
    seen: list[str] = []
    reply = _staged(seen, _stream(seen), failing="accounting")
    assert reply.stream is not None
    with pytest.raises(KeyError, match="accounting"):
        async for _ in reply.stream:
            pass
    assert seen == ["stream finally", "router", "accounting", "telemetry"]


async def test_a_plain_generator_is_guarded_once_and_a_started_stream_takes_no_more_work() -> None:
    seen: list[str] = []
    reply = finish_with(build_call(), Reply(stream=_stream(seen)), _work(seen, "first"))
    guarded = reply.stream
    assert isinstance(guarded, Guarded)
    assert finish_with(build_call(), reply, _work(seen, "second")).stream is guarded
    assert await anext(guarded) == b"a"
    assert not guarded.finish_with(_work(seen, "too late"))
    await guarded.aclose()
    assert seen == ["stream finally", "first", "second"]
