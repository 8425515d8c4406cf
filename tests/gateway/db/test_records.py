"""The system of record's start-up: a database unreachable at start is migrated once it is there."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from gateway.clock import SystemClock
from gateway.db.migrate import current, head
from gateway.observability.logs import EventLog
from gateway.records import MIGRATION_RETRY_S, build_records
from tests.gateway.keys.conftest import settings_with


class GatedClock(SystemClock):
    """Real time, except that ``sleep`` waits until the test opens the gate (and notes what it was asked)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.gate.wait()


async def test_a_database_missing_at_start_is_migrated_when_it_appears(tmp_path: Path) -> None:
    where = tmp_path / "not-yet"
    clock = GatedClock()
    lines = io.StringIO()
    records = build_records(
        settings_with(f"sqlite:///{where / 'faultline.db'}"), clock=clock, log=EventLog(clock, stream=lines), state=None
    )
    assert records is not None
    await records.start()  # the directory does not exist: SQLite cannot open the file
    try:
        assert "database_migration_failed" in lines.getvalue()
        assert records.migrating is not None and not records.migrating.done()
        where.mkdir()
        clock.gate.set()
        async with asyncio.timeout(10):
            await records.migrating
        assert clock.sleeps[0] == MIGRATION_RETRY_S
        assert await current(records.engine) == head()
    finally:
        await records.stop()
