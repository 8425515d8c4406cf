"""The usage writer: batches off the hot path, a bounded queue, counted drops, nothing blocks."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clock import SystemClock
from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.schema import usage_records
from gateway.observability.logs import EventLog
from gateway.requestrecord import AttemptRecord, RequestRecord
from gateway.settings.db import UsageSettings
from gateway.usage.writer import UsageWriter, row_of


class Counted:
    def __init__(self) -> None:
        self.written = 0
        self.dropped: dict[str, int] = {}

    def usage_written(self, records: int) -> None:
        self.written += records

    def usage_dropped(self, records: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + records


def record(i: int, **kw: object) -> RequestRecord:
    rec = RequestRecord(request_id=f"r{i}", ts_arrival=1000.0 + i, consumer="c", model="m", status=200)
    rec.ts_first_byte, rec.ts_end = rec.ts_arrival + 0.1, rec.ts_arrival + 0.5
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(database_url)
    await upgrade(e)
    yield e
    await e.dispose()


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(usage_records))).scalar_one())


def test_a_row_has_the_request_logs_fields_and_no_text() -> None:
    rec = record(1, tokens_in=10, tokens_out=5, cost_usd=0.25, key_id="key_1", key_name="k", tags={"t": "1"})
    rec.attempts = [
        AttemptRecord(provider="p", model="m", started=0.0),
        AttemptRecord(provider="q", model="m", started=1.0),
    ]
    row = row_of(rec)
    assert row["ttft_s"] == pytest.approx(0.1) and row["latency_s"] == pytest.approx(0.5)
    assert (row["attempts"], row["key_id"], row["tags"], row["cost_usd"]) == (2, "key_1", {"t": "1"}, 0.25)
    assert set(row) == {c.name for c in usage_records.columns} - {"id"}


async def test_records_are_written_in_batches(engine: AsyncEngine) -> None:
    events = Counted()
    w = UsageWriter(engine, UsageSettings(batch_max=3), clock=SystemClock(), log=EventLog(SystemClock()), events=events)
    for i in range(7):
        w.submit(record(i))
    await w.flush()
    assert (await rows(engine), w.written, events.written, w.queued) == (7, 7, 7, 0)


async def test_a_full_queue_drops_and_counts_and_a_down_database_keeps_the_batch() -> None:
    lines = io.StringIO()
    events = Counted()
    down = create_engine("postgresql://postgres@127.0.0.1:9/x", timeout_s=1.0)  # nothing listens: a database down
    w = UsageWriter(
        down,
        UsageSettings(queue_max=5, batch_max=2),
        clock=SystemClock(),
        log=EventLog(SystemClock(), stream=lines),
        events=events,
    )
    for i in range(8):
        w.submit(record(i))  # never blocks, never raises
    assert (w.queued, w.dropped, events.dropped) == (5, 3, {"queue_full": 3})
    await w.flush()
    assert w.queued == 5  # a failed write keeps its records for the next try
    await w.stop()
    assert (w.dropped, events.dropped) == (8, {"queue_full": 3, "shutdown": 5})
    logged = [orjson.loads(x)["event"] for x in lines.getvalue().splitlines()]
    assert logged == ["usage_dropped", "usage_write_failed", "usage_dropped"]
    await down.dispose()


async def test_the_task_writes_what_is_queued_and_stop_writes_the_rest(engine: AsyncEngine) -> None:
    w = UsageWriter(
        engine, UsageSettings(batch_max=100, flush_interval_s=60), clock=SystemClock(), log=EventLog(SystemClock())
    )
    await w.start()
    for i in range(3):
        w.submit(record(i))
    await w.stop()
    assert await rows(engine) == 3
