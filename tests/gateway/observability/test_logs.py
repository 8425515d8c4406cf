from __future__ import annotations

import asyncio
import io
import math
import struct
from pathlib import Path

import orjson

from gateway.clock import FakeClock
from gateway.observability.logs import PIPE_BUF, EventLog, round6
from gateway.observability.requestlog import read_records
from gateway.requestrecord import RequestRecord
from gateway.rng import Rng

from .conftest import make_settings
from .helpers import kit


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in buf.getvalue().splitlines()]


def test_request_line_fields_and_clock_timestamp() -> None:
    clock, buf = FakeClock(start=1000.0), io.StringIO()
    log = EventLog(clock, stream=buf)
    rec = RequestRecord(
        "req_1", 999.0, consumer="alice", model="m", provider="p", status=200, tokens_in=3, tokens_out=4, run_id="r1"
    )
    log.request(rec, trace_id="ab" * 16, latency_s=1.0, ttft_s=0.25, payload={"messages": ["secret"]})
    (line,) = _lines(buf)
    assert line == {
        "ts": 1000.0,
        "level": "info",
        "event": "request",
        "request_id": "req_1",
        "trace_id": "ab" * 16,
        "consumer": "alice",
        "model": "m",
        "provider": "p",
        "stream": False,
        "status": 200,
        "outcome": "ok",
        "error_type": None,
        "latency_s": 1.0,
        "ttft_s": 0.25,
        "attempts": 0,
        "retries": 0,
        "tokens_in": 3,
        "tokens_out": 4,
        "cost_usd": 0.0,
        "run_id": "r1",
    }


def test_payload_only_with_the_debug_option() -> None:
    clock, buf = FakeClock(), io.StringIO()
    EventLog(clock, stream=buf, log_payloads=True).request(
        RequestRecord("r", 0.0, status=200), trace_id=None, latency_s=0.0, ttft_s=None, payload={"m": "hello"}
    )
    assert _lines(buf)[0]["payload"] == {"m": "hello"}


def test_levels_filter_and_errors_are_error_level() -> None:
    clock, buf = FakeClock(), io.StringIO()
    log = EventLog(clock, stream=buf, level="warning")
    log.request(RequestRecord("ok", 0.0, status=200), trace_id=None, latency_s=0.0, ttft_s=None)
    log.request(RequestRecord("bad", 0.0, status=503), trace_id=None, latency_s=0.0, ttft_s=None)
    log.event("breaker_transition", level="warning", provider="p", from_state="closed", to_state="open")
    assert [(x["event"], x["level"]) for x in _lines(buf)] == [("request", "error"), ("breaker_transition", "warning")]


def test_two_logs_do_not_share_handlers() -> None:
    a, b = io.StringIO(), io.StringIO()
    EventLog(FakeClock(), stream=a).event("x")
    EventLog(FakeClock(), stream=b).event("y")
    assert [x["event"] for x in _lines(a)] == ["x"]
    assert [x["event"] for x in _lines(b)] == ["y"]


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_round6_is_round_to_six_digits_bit_for_bit() -> None:
    """Epoch times, durations, near-ties of the sixth digit (exact ones and one ulp either side), tiny, huge,
    negative, zero and non-finite values: the same double as ``round(x, 6)``, NaN aside (NaN either way)."""
    rng = Rng(6)
    values = [0.0, -0.0, 1e-7, 4e-7, 5e-7, 6e-7, 0.5e-6, 1.5e-6, 2.5e-6, 1e300, -1e300, 2.0**51 / 1e6, 2.0**52 / 1e6]
    values += [math.inf, -math.inf, 1.0000005, 0.0000025, 1733280000.1234565, 1733280000.0000005]
    for _ in range(20_000):
        values.append(rng.uniform(1.6e9, 1.9e9))  # epoch times
        values.append(rng.uniform(0.0, 2.0) ** 3)  # durations, many of them small
        values.append(rng.randrange(10**10) / 1e6 + 5e-7)  # near-ties
        tie = (rng.randrange(10**15) + 0.5) / 1e6
        values += [tie, math.nextafter(tie, 0.0), math.nextafter(tie, math.inf)]
        values.append(-rng.uniform(0.0, 100.0))
    for x in values:
        assert _bits(round6(x)) == _bits(round(x, 6)), x
    assert math.isnan(round6(math.nan))
    assert round6(5) == 5 and isinstance(round6(5), int)  # as round's: an int stays an int


class _Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


async def test_once_started_the_lines_of_one_tick_are_written_together_on_the_next() -> None:
    buf = _Writes()
    log = EventLog(FakeClock(), stream=buf)
    log.event("before")  # not started: written at once
    assert (len(_lines(buf)), buf.writes) == (1, 1)
    log.start()
    for i in range(3):
        log.event("e", i=i)
    assert len(_lines(buf)) == 1  # pending until the next tick
    await asyncio.sleep(0)
    assert [x.get("i") for x in _lines(buf)] == [None, 0, 1, 2]
    assert buf.writes == 2  # one write for the tick's three lines
    log.event("flushed")
    log.flush()  # the seam for readers that cannot wait for the tick
    assert _lines(buf)[-1]["event"] == "flushed"
    log.event("pending")
    log.close()  # the app's stop: nothing pending is lost
    log.event("after")  # closed: written at once
    assert [x["event"] for x in _lines(buf)][-3:] == ["flushed", "pending", "after"]


async def test_set_stream_leaves_the_pending_lines_to_the_old_stream() -> None:
    old, new = io.StringIO(), io.StringIO()
    log = EventLog(FakeClock(), stream=old)
    log.start()
    log.event("old")
    log.set_stream(new)
    log.event("new")
    await asyncio.sleep(0)
    assert ([x["event"] for x in _lines(old)], [x["event"] for x in _lines(new)]) == (["old"], ["new"])


def test_a_log_started_on_a_loop_since_closed_writes_at_once() -> None:
    buf = io.StringIO()
    log = EventLog(FakeClock(), stream=buf)

    async def start() -> None:
        log.start()

    asyncio.run(start())  # the loop is closed when run returns
    log.event("late")
    assert [x["event"] for x in _lines(buf)] == ["late"]


async def test_a_graceful_stop_loses_no_line_and_no_record(tmp_path: Path) -> None:
    """The lines and records of the last tick are pending when the app stops: the stop writes them all."""
    k = kit(make_settings(), request_log=tmp_path / "r.jsonl")
    await k.telemetry.start()
    writer = k.telemetry.requestlog
    assert writer is not None
    for i in range(50):
        k.telemetry.logs.event("e", i=i)
        writer.submit(RequestRecord(f"req_{i}", 0.0, status=200))
    assert k.log.getvalue() == ""
    await k.telemetry.stop()
    assert [x["i"] for x in _lines(k.log)] == list(range(50))
    assert [r["request_id"] for r in read_records(tmp_path / "r.jsonl")] == [f"req_{i}" for i in range(50)]


class _Sizes(io.StringIO):
    """A stream that notes the size of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


async def test_a_tick_s_lines_go_out_in_whole_lines_of_at_most_pipe_buf_bytes_a_write() -> None:
    """Workers share stderr, often a pipe: a write over PIPE_BUF can be interleaved with another worker's, so a
    tick's lines are written in pieces of whole lines within PIPE_BUF (a longer line alone), none lost."""
    buf = _Sizes()
    log = EventLog(FakeClock(), stream=buf)
    log.start()
    for i in range(60):
        log.event("e", i=i, pad="x" * 200)
    log.event("long", pad="y" * (PIPE_BUF + 10))
    log.event("e", i=60)
    await asyncio.sleep(0)
    log.close()
    assert [x.get("i") for x in _lines(buf)] == [*range(60), None, 60]
    sizes = [len(w.encode()) for w in buf.writes]
    assert len(sizes) > 3  # the tick's lines did not fit one write
    assert all(w.endswith("\n") for w in buf.writes)  # whole lines only
    long_line = len(orjson.dumps(_lines(buf)[60])) + 1
    assert [n for n in sizes if n > PIPE_BUF] == [long_line]  # the long line alone, every other write within
