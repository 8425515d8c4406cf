from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway.observability.requestlog import RequestLogWriter, encode, read_records, segments
from gateway.requestrecord import SCHEMA_VERSION, AttemptRecord, RequestRecord


def _rec(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req_{i:04d}",
        ts_arrival=1000.0 + i,
        consumer="alice",
        model="m",
        status=200,
        attempts=[AttemptRecord("p", "m", 1000.0 + i, 0.125)],
        tokens_in=i,
    )


async def test_nothing_lost_on_graceful_shutdown(tmp_path: Path) -> None:
    w = RequestLogWriter(tmp_path / "requests.jsonl", run_id="run-7")
    await w.start()
    for i in range(500):
        w.submit(_rec(i))
        if i % 97 == 0:
            await asyncio.sleep(0)  # a partial batch is written
    await w.stop()
    got = list(read_records(tmp_path / "requests.jsonl"))
    assert [r["request_id"] for r in got] == [f"req_{i:04d}" for i in range(500)]
    assert {r["run_id"] for r in got} == {"run-7"}
    assert {r["schema"] for r in got} == {SCHEMA_VERSION}
    assert w.written == 500


async def test_submit_does_not_write_on_the_hot_path(tmp_path: Path) -> None:
    w = RequestLogWriter(tmp_path / "r.jsonl")
    await w.start()
    w.submit(_rec(1))
    assert (tmp_path / "r.jsonl").read_bytes() == b""  # pending: written on the next tick
    await w.stop()
    assert len(list(read_records(tmp_path / "r.jsonl"))) == 1


async def test_the_records_of_one_tick_are_written_together_on_the_next(tmp_path: Path) -> None:
    w = RequestLogWriter(tmp_path / "r.jsonl")
    w.submit(_rec(0))  # before the start: written on the first tick after it
    await w.start()
    w.submit(_rec(1))
    w.submit(_rec(2))
    await asyncio.sleep(0)
    assert [r["request_id"] for r in read_records(tmp_path / "r.jsonl")] == ["req_0000", "req_0001", "req_0002"]
    w.submit(_rec(3))
    await w.stop()
    assert [r["request_id"] for r in read_records(tmp_path / "r.jsonl")][3:] == ["req_0003"]
    assert w.written == 4


async def test_same_records_same_bytes(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        w = RequestLogWriter(tmp_path / f"{name}.jsonl", run_id="r")
        await w.start()
        for i in range(20):
            w.submit(_rec(i))
        await w.stop()
        outs.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") == 20


async def test_rotates_by_size_and_reads_segments_in_order(tmp_path: Path) -> None:
    line = len(encode(_rec(0)))
    path = tmp_path / "r.jsonl"
    w = RequestLogWriter(path, max_bytes=4096)
    await w.start()
    n = 3 * (4096 // line) + 5
    for i in range(n):
        w.submit(_rec(i))
        await asyncio.sleep(0)
    await w.stop()
    segs = segments(path)
    assert len(segs) >= 4
    assert all(s.stat().st_size <= 4096 for s in segs)
    assert [r["request_id"] for r in read_records(path)] == [f"req_{i:04d}" for i in range(n)]


async def test_appends_to_an_existing_log_and_record_keeps_its_own_run_id(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for run in ("one", "two"):
        w = RequestLogWriter(path, run_id=run)
        await w.start()
        w.submit(_rec(0))
        rec = _rec(1)
        rec.run_id = "explicit"
        w.submit(rec)
        await w.stop()
    assert [r["run_id"] for r in read_records(path)] == ["one", "explicit", "two", "explicit"]


async def test_stop_without_start_still_writes(tmp_path: Path) -> None:
    w = RequestLogWriter(tmp_path / "sub" / "r.jsonl")
    w.submit(_rec(3))
    await w.stop()
    assert [r["tokens_in"] for r in read_records(tmp_path / "sub" / "r.jsonl")] == [3]


async def test_two_writers_on_one_path_rotate_once_and_lose_nothing(tmp_path: Path) -> None:
    """Two workers share a request-log path: a rotation by one is seen by the other, sizes stay bounded."""
    path = tmp_path / "r.jsonl"
    line = len(encode(_rec(0)))
    a, b = RequestLogWriter(path, max_bytes=4096), RequestLogWriter(path, max_bytes=4096)
    await a.start()
    await b.start()
    n = 4 * (4096 // line)
    for i in range(n):
        (a if i % 2 == 0 else b).submit(_rec(i))
        await asyncio.sleep(0)  # each writer writes its own batch, in turn
    await a.stop()
    await b.stop()
    segs = segments(path)
    assert len(segs) >= 4
    assert all(0 < s.stat().st_size <= 4096 for s in segs)
    got = [r["request_id"] for r in read_records(path)]
    assert sorted(got) == [f"req_{i:04d}" for i in range(n)]
    assert (a.written, b.written) == (n // 2, n // 2)


async def test_a_failed_write_is_counted_reported_and_the_next_batch_reopens(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.symlink_to("/dev/full")  # every write fails with ENOSPC
    errors: list[tuple[int, str]] = []
    w = RequestLogWriter(path, on_error=lambda n, e: errors.append((n, e)))
    await w.start()
    w.submit(_rec(0))
    w.submit(_rec(1))
    await asyncio.sleep(0)  # the batch is taken and fails to be written
    assert (w.lost, errors) == (2, [(2, "OSError: No space left on device")])
    path.unlink()  # the disk is back: a regular file at the path
    w.submit(_rec(2))
    await w.stop()  # no exception
    assert [r["request_id"] for r in read_records(path)] == ["req_0002"]
    assert (w.written, w.lost) == (1, 2)


async def test_telemetry_logs_a_request_log_that_cannot_be_written(tmp_path: Path) -> None:
    from .conftest import make_settings
    from .helpers import kit

    path = tmp_path / "r.jsonl"
    path.symlink_to("/dev/full")
    k = kit(make_settings(), request_log=path)
    await k.telemetry.start()
    assert k.telemetry.requestlog is not None
    k.telemetry.requestlog.submit(_rec(0))
    await k.telemetry.stop()
    (line,) = [orjson.loads(x) for x in k.log.getvalue().splitlines()]
    assert (line["event"], line["level"], line["records"], line["path"]) == ("request_log_error", "error", 1, str(path))


def test_a_line_is_the_record_as_a_dict_with_its_schema() -> None:
    rec = RequestRecord(
        request_id="req_1",
        ts_arrival=1000.123456789,
        run_id="r",
        consumer="alice",
        priority=2,
        model="m",
        stream=True,
        ts_first_byte=1000.25,
        ts_end=1001.5,
        status=429,
        outcome="quota_rejected",
        error_type="rate_limit_exceeded",
        provider="p",
        attempts=[AttemptRecord("p", "m", 1000.2, 0.05, "timeout", 504, True), AttemptRecord("q", "m2", 1000.3)],
        retries=1,
        breaker_states={"p": "open"},
        decisions={"quota": {"decision": "ok", "charged": 5}, "breaker": [{"from": "closed", "to": "open"}]},
        tokens_in=9,
        tokens_out=2,
        cost_usd=1.25e-6,
        key_id="vk_1",
        key_name="ci",
        tags={"team": "a"},
    )
    line = encode(rec)
    assert line == orjson.dumps(rec.to_dict()) + b"\n"
    assert orjson.loads(line) == {**rec.to_dict(), "schema": SCHEMA_VERSION}
    bare = RequestRecord("r", 0.0)
    assert encode(bare) == orjson.dumps(bare.to_dict()) + b"\n"


def test_a_line_keeps_the_declared_field_order_whatever_order_the_fields_were_set_in() -> None:
    """orjson serialises a record from its ``__dict__``: every field is there, in declaration order, since
    ``__init__`` sets each one; setting them again later, in any order, moves none."""
    rec = RequestRecord("req_2", 5.0)
    rec.tags = {"b": "1", "a": "2"}
    rec.key_name = "k"
    rec.cost_usd = 0.5
    rec.attempts.append(AttemptRecord("p", "m", 5.5))
    rec.attempts[0].injected = True
    rec.attempts[0].provider = "q"
    rec.status = 200
    rec.request_id = "req_3"
    rec.ts_end = 6.0
    line = encode(rec)
    assert line == orjson.dumps(rec.to_dict()) + b"\n"
    assert list(orjson.loads(line)) == [*rec.to_dict()]


async def test_a_path_moved_or_removed_by_another_process_gets_a_new_file(tmp_path: Path) -> None:
    """The path is checked under the lock before each batch: a file moved away (an outside rotation) or
    removed keeps no later record; the new file at the path takes them, its size counted from zero."""
    path = tmp_path / "r.jsonl"
    line = len(encode(_rec(0)))
    w = RequestLogWriter(path, max_bytes=3 * line)
    await w.start()
    w.submit(_rec(0))
    w.submit(_rec(1))
    await asyncio.sleep(0)
    path.rename(tmp_path / "moved.jsonl")
    w.submit(_rec(2))
    await asyncio.sleep(0)
    path.unlink()
    w.submit(_rec(3))
    w.submit(_rec(4))
    w.submit(_rec(5))
    await w.stop()
    assert [r["request_id"] for r in read_records(tmp_path / "moved.jsonl")] == ["req_0000", "req_0001"]
    assert [r["request_id"] for r in read_records(path)] == ["req_0003", "req_0004", "req_0005"]
    assert not (tmp_path / "r.jsonl.1").exists()
    assert path.stat().st_size == 3 * line


class _Short:
    """A file that takes at most ``most`` bytes a write, as a nearly full disk may."""

    def __init__(self, real: Any, most: int) -> None:
        self.real, self.most = real, most

    def write(self, data: Any) -> int:
        return int(self.real.write(bytes(data)[: self.most]))

    def fileno(self) -> int:
        return int(self.real.fileno())

    def close(self) -> None:
        self.real.close()


async def test_a_short_write_is_followed_by_the_rest_and_a_write_of_nothing_loses_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    errors: list[tuple[int, str]] = []
    w = RequestLogWriter(path, on_error=lambda n, e: errors.append((n, e)))
    await w.start()
    w._file = _Short(w._file, 7)  # type: ignore[assignment]
    w.submit(_rec(0))
    w.submit(_rec(1))
    await asyncio.sleep(0)
    assert [r["request_id"] for r in read_records(path)] == ["req_0000", "req_0001"]
    w._file = _Short(w._file, 0)  # type: ignore[assignment]
    w.submit(_rec(2))
    await asyncio.sleep(0)
    assert (w.written, w.lost, [n for n, _ in errors]) == (2, 1, [1])
    w.submit(_rec(3))  # reopened
    await w.stop()
    assert [r["request_id"] for r in read_records(path)] == ["req_0000", "req_0001", "req_0003"]
