"""The system of record one app owns: the engine, the key store and its in-memory directory, the usage writer.

Built by :func:`build_records` when ``database.url`` is set (none in replays: virtual time and a database thread
do not mix). ``start``: migrate (``database.migrate_on_start``), load the keys, start the writers; a database
unreachable at start is logged, not fatal: the configured keys serve, the directory keeps trying, usage records
queue up to their bound. ``stop``: the last usage records, then the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clock import Clock
from gateway.config import Settings
from gateway.db.engine import create_engine, redact
from gateway.db.migrate import upgrade
from gateway.keys.directory import KeyDirectory
from gateway.keys.store import KeyStore
from gateway.observability.logs import EventLog
from gateway.usage.writer import UsageEvents, UsageWriter


@dataclass(slots=True)
class Records:
    settings: Settings
    engine: AsyncEngine
    store: KeyStore
    directory: KeyDirectory
    usage: UsageWriter
    log: EventLog

    async def start(self) -> None:
        db = self.settings.database
        if db.migrate_on_start:
            try:
                async with asyncio.timeout(max(db.timeout_s, 30.0)):
                    await upgrade(self.engine)
            except Exception as exc:
                self.log.event(
                    "database_migration_failed",
                    level="error",
                    url=redact(db.url or ""),
                    error=type(exc).__name__,
                )
        await self.directory.start()
        await self.usage.start()

    async def stop(self) -> None:
        await self.directory.stop()
        await self.usage.stop()
        await self.engine.dispose()


def build_records(
    settings: Settings, *, clock: Clock, log: EventLog, state: Any, events: UsageEvents | None = None
) -> Records | None:
    db = settings.database
    if not db.url:
        return None
    engine = create_engine(db.url, pool_size=db.pool_size, timeout_s=db.timeout_s)
    store = KeyStore(engine, clock=clock)
    return Records(
        settings=settings,
        engine=engine,
        store=store,
        directory=KeyDirectory(store, settings, clock=clock, log=log, state=state),
        usage=UsageWriter(engine, db.usage, clock=clock, log=log, events=events, timeout_s=db.timeout_s),
        log=log,
    )
