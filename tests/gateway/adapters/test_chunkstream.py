"""The stream of parsed chunks: events however the upstream's reads split them, and the time limits on its reads
(the first chunk by the first-byte limit, each later one within the idle limit of the previous), on virtual
time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping

import orjson
import pytest

from gateway.adapters.base import ChunkStream
from gateway.adapters.sse import DONE, EventParser
from gateway.adapters.upstreamerrors import UpstreamStreamCut, UpstreamStreamTimeout, UpstreamTimeout
from gateway.clock import run_virtual


class Scripted:
    """An upstream response whose body is ``script``: bytes to send, or seconds to wait before the next."""

    status = 200
    headers: Mapping[str, str] = {}

    def __init__(self, script: list[bytes | float]) -> None:
        self._script = script
        self.closed = False

    async def read(self) -> bytes:
        return b"".join([b async for b in self.iter_bytes()])

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for step in self._script:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                yield step

    async def aclose(self) -> None:
        self.closed = True


def event(n: int) -> bytes:
    return b"data: " + orjson.dumps({"id": "up", "model": "up-model", "choices": [{"index": 0, "n": n}]}) + b"\n\n"


async def read_all(script: list[bytes | float], idle_s: float = 1.0, first_s: float = 5.0) -> list[tuple[int, float]]:
    """(each chunk's ``n``, the virtual time it arrived) until the stream ends."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stream = ChunkStream("p", Scripted(script), idle_s, t0 + first_s, model="m", cid="chatcmpl-1")
    out = []
    try:
        async for chunk in stream:
            assert chunk["id"] == "chatcmpl-1" and chunk["model"] == "m"
            out.append((chunk["choices"][0]["n"], loop.time() - t0))
    finally:
        await stream.aclose()
    return out


def test_events_split_across_reads_or_sharing_one_come_out_one_by_one() -> None:
    whole = event(1) + event(2) + event(3)
    script: list[bytes | float] = [whole[:10], whole[10:70], whole[70:], b": a comment\n\n", event(4) + DONE]
    assert [n for n, _ in run_virtual(read_all(script))] == [1, 2, 3, 4]


def test_chunks_each_within_the_idle_limit_stream_to_the_end_however_long_the_stream() -> None:
    script: list[bytes | float] = []
    for n in range(20):
        script += [0.9, event(n)]
    got = run_virtual(read_all([*script, DONE], idle_s=1.0))
    assert [n for n, _ in got] == list(range(20))
    assert got[-1][1] == pytest.approx(18.0)


def test_a_silence_longer_than_the_idle_limit_ends_the_stream_when_the_limit_passes() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamStreamTimeout, match="no chunk for 1s"):
            await read_all([event(1), 0.5, event(2), 3.0, event(3), DONE], idle_s=1.0)
        return loop.time() - t0

    assert run_virtual(main()) == pytest.approx(1.5)


def test_an_event_dribbled_in_pieces_must_still_complete_within_the_idle_limit() -> None:
    whole = event(2)
    pieces: list[bytes | float] = [event(1)]
    for i in range(0, len(whole), 8):
        pieces += [0.4, whole[i : i + 8]]

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamStreamTimeout):
            await read_all(pieces, idle_s=1.0)
        return loop.time() - t0

    assert run_virtual(main()) == pytest.approx(1.0)


def test_the_first_chunk_is_due_by_the_first_byte_limit() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamTimeout, match="first chunk"):
            await read_all([b": keep-alive\n\n", 2.0, b": keep-alive\n\n", 2.0, event(1)], idle_s=1.0, first_s=3.0)
        return loop.time() - t0

    assert run_virtual(main()) == pytest.approx(3.0)


def test_a_body_that_ends_without_done_is_a_cut_and_its_unterminated_last_event_still_counts() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        stream = ChunkStream("p", Scripted([event(1), event(2).rstrip()]), 1.0, loop.time() + 5.0)
        it = aiter(stream)
        seen = [(await anext(it))["choices"][0]["n"], (await anext(it))["choices"][0]["n"]]
        with pytest.raises(UpstreamStreamCut, match="without \\[DONE\\]"):
            await anext(it)
        return seen

    assert run_virtual(main()) == [1, 2]


def test_a_cancelled_read_is_a_cancellation_not_a_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = ChunkStream("p", Scripted([event(1), 10.0, event(2)]), 1.0, loop.time() + 5.0)
        it = aiter(stream)
        assert (await anext(it))["choices"][0]["n"] == 1
        reader = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.5)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await stream.aclose()

    run_virtual(main())


def test_time_spent_between_reads_counts_against_no_limit() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        stream = ChunkStream("p", Scripted([event(1), 0.2, event(2), event(3), DONE]), 1.0, loop.time() + 5.0)
        seen = []
        async for chunk in stream:
            seen.append(chunk["choices"][0]["n"])
            await asyncio.sleep(3.0)  # the client is slow: the timer of the read before fires meanwhile
        await stream.aclose()
        return seen

    assert run_virtual(main()) == [1, 2, 3]


def test_events_parse_as_the_stream_splits_them() -> None:
    parser = EventParser()
    assert parser.feed(b'data: {"a":1}\n') == []
    assert parser.feed(b"\ndata:  two\r\n\r\n: note\n\nevent: x\ndata: a\ndata: b\n\n") == [b'{"a":1}', b"two", b"a\nb"]
    assert parser.feed(b"id: 7\n\ndata: tail") == []
    assert parser.tail() == b"tail"
    assert parser.tail() is None


def _reference(pieces: list[bytes]) -> list[bytes]:
    """The events as the generator this parser replaced found them: each time, the earliest of ``\\n\\n`` and
    ``\\r\\n\\r\\n`` ends an event and the newlines after it are dropped."""
    out, buf = [], b""
    for piece in pieces:
        buf += piece
        while True:
            ends = [i for i in (buf.find(b"\n\n"), buf.find(b"\r\n\r\n")) if i >= 0]
            if not ends:
                break
            event, buf = buf[: min(ends)], buf[min(ends) :].lstrip(b"\r\n")
            data = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
            if data:
                out.append(b"\n".join(data))
    tail = buf.strip()
    if tail.startswith(b"data:"):
        out.append(tail[5:].lstrip(b" "))
    return out


def test_any_stream_split_anyhow_parses_as_the_reference_does() -> None:
    rng = random.Random(7)
    atoms = [
        b"data: ",
        b"data:",
        b'{"a":1}',
        b"x",
        b" ",
        b"\n",
        b"\n\n",
        b"\r\n",
        b"\r",
        b": c",
        b"id: 1",
        b"data: [DONE]",
    ]
    for _ in range(3000):
        stream = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(stream) + 1), k=min(len(stream) + 1, rng.randint(0, 6))))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        parser = EventParser()
        got = [data for piece in pieces for data in parser.feed(piece)]
        tail = parser.tail()
        assert got + ([tail] if tail is not None else []) == _reference(pieces), (stream, pieces)
