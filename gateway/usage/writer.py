"""Every finished request's usage record, written to the database in batches, off the hot path.

:meth:`UsageWriter.submit` only appends to a bounded in-memory queue (``database.usage.queue_max``) and never
blocks or fails: when the queue is full the record is dropped and counted (``UsageEvents.usage_dropped``, a
metric and a log line at the first drop of an outage). A task writes up to ``batch_max`` records per INSERT,
at the latest ``flush_interval_s`` after the first one queued. A batch that fails (database down) is kept and
tried again every ``retry_s``; meanwhile new records queue up to the bound. :meth:`stop` makes one last
attempt, bounded by ``database.timeout_s``; what still cannot be written is counted as dropped.

The row is the request log's record less what a usage question never needs (no prompt text ever reaches
either): see ``usage_records`` in gateway/db/schema.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clock import Clock
from gateway.db.schema import usage_records
from gateway.observability.logs import EventLog
from gateway.requestrecord import RequestRecord
from gateway.settings.db import UsageSettings


class UsageEvents(Protocol):
    def usage_written(self, records: int) -> None: ...

    def usage_dropped(self, records: int, reason: str) -> None: ...


def row_of(rec: RequestRecord) -> dict[str, Any]:
    ttft = None if rec.ts_first_byte is None else max(0.0, rec.ts_first_byte - rec.ts_arrival)
    latency = None if rec.ts_end is None else max(0.0, rec.ts_end - rec.ts_arrival)
    cache = rec.decisions.get("cache")
    return {
        "request_id": rec.request_id,
        "run_id": rec.run_id,
        "ts": rec.ts_arrival,
        "consumer": rec.consumer,
        "key_id": rec.key_id,
        "key_name": rec.key_name,
        "model": rec.model,
        "provider": rec.provider,
        "stream": rec.stream,
        "status": rec.status,
        "outcome": rec.outcome,
        "error_type": rec.error_type,
        "tokens_in": rec.tokens_in,
        "tokens_out": rec.tokens_out,
        "cost_usd": rec.cost_usd,
        "ttft_s": ttft,
        "latency_s": latency,
        "attempts": len(rec.attempts),
        "retries": rec.retries,
        "cache": cache.get("result") if isinstance(cache, dict) else None,
        "idempotent_replay": bool(rec.decisions.get("idempotency", {}).get("replayed", False)),
        "tags": rec.tags,
        "record": rec.to_dict(),
    }


class UsageWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: UsageSettings,
        *,
        clock: Clock,
        log: EventLog,
        events: UsageEvents | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._s = settings
        self._clock = clock
        self._log = log
        self._events = events
        self._timeout_s = timeout_s
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._drop_logged = False
        self.written = 0
        self.dropped = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, rec: RequestRecord) -> None:
        """Queue one finished request's record. Never blocks, never raises."""
        if len(self._queue) >= self._s.queue_max:
            self._drop(1, "queue_full")
            return
        self._queue.append(row_of(rec))
        if len(self._queue) == 1 or len(self._queue) >= self._s.batch_max:  # a batch begins, or is full
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="faultline-usage-writer")

    async def stop(self) -> None:
        """Stop the task, make one last bounded attempt at what is queued; the rest is counted as dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            if not await self._write_one_batch():
                self._drop(len(self._queue), "shutdown")
                self._queue.clear()

    async def flush(self) -> None:
        """Write everything queued now (tests and ``stop``); a failure leaves the records queued."""
        while self._queue and await self._write_one_batch():
            pass

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()  # the first record of a batch
            if len(self._queue) < self._s.batch_max:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._s.flush_interval_s):
                        self._wake.clear()
                        await self._wake.wait()  # a full batch, or the interval
            if not await self._write_one_batch():
                await self._clock.sleep(self._s.retry_s)

    async def _write_one_batch(self) -> bool:
        batch = [self._queue[i] for i in range(min(len(self._queue), self._s.batch_max))]
        if not batch:
            return True
        try:
            async with asyncio.timeout(self._timeout_s), self._engine.begin() as conn:
                await conn.execute(insert(usage_records), batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._failing:
                self._failing = True
                self._log.event("usage_write_failed", level="error", records=len(batch), error=type(exc).__name__)
            return False
        for _ in batch:
            self._queue.popleft()
        self.written += len(batch)
        self._drop_logged = False
        if self._failing:
            self._failing = False
            self._log.event("usage_write_recovered", level="info", dropped_total=self.dropped)
        if self._events is not None:
            self._events.usage_written(len(batch))
        return True

    def _drop(self, n: int, reason: str) -> None:
        if not self._drop_logged or reason != "queue_full":  # a full queue: its first drop (the metric counts all)
            self._drop_logged = True
            self._log.event("usage_dropped", level="error", records=n, reason=reason, queued=len(self._queue))
        self.dropped += n
        if self._events is not None:
            self._events.usage_dropped(n, reason)
