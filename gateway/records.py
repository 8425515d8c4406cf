"""The system of record one app owns: the engine, the key store and its in-memory directory, the usage writer.

Built by :func:`build_records` when ``database.url`` is set (none in replays: virtual time and a database thread
do not mix). ``start``: migrate (``database.migrate_on_start``), load the keys, start the writers; a database
unreachable at start is logged, not fatal: the configured keys serve, the migration is retried every 5 s, the
directory keeps trying, usage records queue up to their bound. ``stop``: the last usage records, then the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clock import Clock
from gateway.config import Settings
from gateway.db.engine import create_engine, redact
from gateway.db.migrate import upgrade
from gateway.keys.directory import KeyDirectory
from gateway.keys.keystore import KeyStore
from gateway.observability.logs import EventLog
from gateway.store.client import StateClient
from gateway.usage.writer import UsageEvents, UsageWriter

MIGRATION_RETRY_S = 5.0


@dataclass(slots=True)
class Records:
    settings: Settings
    engine: AsyncEngine
    store: KeyStore
    directory: KeyDirectory
    usage: UsageWriter
    log: EventLog
    clock: Clock
    migrating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.database.migrate_on_start and not await self._migrate():
            # unreachable at start: keep trying in the background; the keys and usage catch up once it is there
            self.migrating = asyncio.get_running_loop().create_task(self._retry_migration(), name="faultline-migrate")
        await self.directory.start()
        await self.usage.start()

    async def _migrate(self) -> bool:
        db = self.settings.database
        try:
            async with asyncio.timeout(max(db.timeout_s, 30.0)):
                await upgrade(self.engine)
        except Exception as exc:
            self.log.event(
                "database_migration_failed", level="error", url=redact(db.url or ""), error=type(exc).__name__
            )
            return False
        return True

    async def _retry_migration(self) -> None:
        while True:
            await self.clock.sleep(MIGRATION_RETRY_S)
            if await self._migrate():
                await self.directory.refresh()
                return

    async def stop(self) -> None:
        if self.migrating is not None:
            self.migrating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.migrating
        await self.directory.stop()
        await self.usage.stop()
        await self.engine.dispose()


def build_records(
    settings: Settings, *, clock: Clock, log: EventLog, state: StateClient | None, events: UsageEvents | None = None
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
        clock=clock,
    )
