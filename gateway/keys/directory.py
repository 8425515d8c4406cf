"""Every replica's copy of the virtual keys: looked up in memory on the hot path, kept fresh off it.

A replica loads the live keys at start, then reads the changes (rows whose revision is newer than the last it
read: gateway/keys/keystore.py) every ``database.keys.refresh_s`` (1 s by default), and at once when a change is
announced on the Redis channel ``database.keys.channel`` (the admin API publishes one after each change). So a
key created, changed or revoked on one replica is in force on every replica within the refresh interval plus
one read (under 2 s), usually within milliseconds; if Redis is down the interval alone still bounds it. The
hot path never waits for the database: while it is unreachable the last copy keeps serving (a revocation made
meanwhile cannot be read either; it takes effect at the first read that succeeds).

The two sources cannot shadow each other: a database key whose hash or consumer name belongs to the
configuration file is not loaded (logged as ``key_conflict``); the admin API refuses to create one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from gateway.clock import Clock
from gateway.config import Consumer, Settings
from gateway.identity import Identity
from gateway.observability.logs import EventLog
from gateway.settings.budget import Budget
from gateway.settings.quota import Limits
from gateway.store.client import StateClient


def identity_of(row: Any, consumer_budget: Budget | None) -> Identity:
    key_budget = None
    if row.usd_per_day is not None or row.usd_per_month is not None:
        key_budget = Budget(usd_per_day=row.usd_per_day, usd_per_month=row.usd_per_month)
    consumer = Consumer(
        name=row.consumer,
        key_sha256=row.key_sha256,
        tier=row.tier or "default",
        limits=Limits.model_validate(row.limits) if row.limits else None,
        priority=row.priority,
        permissions=frozenset(row.permissions),
        models=tuple(row.models) if row.models is not None else None,
        budget=consumer_budget,
    )
    return Identity(
        consumer=consumer,
        key_id=row.id,
        key_name=row.name,
        tags=dict(row.tags or {}),
        expires_at=row.expires_at,
        key_budget=key_budget,
    )


class KeyChanges(Protocol):
    """What the directory reads (gateway/keys/keystore.py ``KeyStore.changes``)."""

    async def changes(self, since: int) -> tuple[int, Sequence[Any], Sequence[Any]]: ...


class KeyDirectory:
    def __init__(
        self,
        store: KeyChanges,
        settings: Settings,
        *,
        clock: Clock,
        log: EventLog,
        state: StateClient | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._log = log
        self._state = state
        cfg = settings.database.keys
        self._refresh_s = cfg.refresh_s
        self._channel = cfg.channel
        self._config_hashes = {c.key_sha256 for c in settings.consumers}
        self._config_names = {c.name for c in settings.consumers}
        self._by_hash: dict[str, Identity] = {}
        self._rows: dict[str, Any] = {}  # key id -> its latest row (live or not)
        self._budgets: dict[str, Budget] = {}  # consumer -> budget set through the admin API
        self._revision = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.loaded = False

    def follow(self, settings: Settings) -> None:
        """A reloaded configuration (gateway/reload.py): every key is checked again against its consumers (a key
        may not shadow one) and its tiers."""
        self._settings = settings
        self._config_hashes = {c.key_sha256 for c in settings.consumers}
        self._config_names = {c.name for c in settings.consumers}
        for row in list(self._rows.values()):
            self._apply(row)

    # -- hot path ------------------------------------------------------------------------------------------

    def lookup(self, digest: str) -> Identity | None:
        """The live key with this SHA-256, or ``None`` (unknown, revoked or expired)."""
        found = self._by_hash.get(digest)
        if found is None or (found.expires_at is not None and found.expires_at <= self._clock.now()):
            return None
        return found

    def consumer_budget(self, consumer: str) -> Budget | None:
        return self._budgets.get(consumer)

    @property
    def revision(self) -> int:
        return self._revision

    def __len__(self) -> int:
        return len(self._by_hash)

    # -- off the hot path ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """First read now (a failure is logged; the loop keeps trying), then the refresh loop and the listener."""
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._poll(), name="faultline-keys-refresh"))
        if self._state is not None:
            self._tasks.append(loop.create_task(self._listen(self._state), name="faultline-keys-listen"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    async def announce(self) -> None:
        """After a change: read it here now, and tell the other replicas (best effort; they poll anyway)."""
        await self.refresh()
        if self._state is not None:
            try:
                await self._state.publish(self._channel, str(self._revision))
            except Exception as exc:
                self._log.event("keys_announce_failed", level="warning", error=type(exc).__name__)

    async def refresh(self) -> bool:
        """Read and apply the changes since the last read. False (and logged) when the database failed."""
        try:
            async with asyncio.timeout(self._settings.database.timeout_s):
                top, keys, budgets = await self._store.changes(self._revision)
        except Exception as exc:
            self._log.event("keys_refresh_failed", level="warning", error=type(exc).__name__)
            return False
        if top <= self._revision and not keys and not budgets:
            return True
        for b in budgets:
            if b.usd_per_day is None and b.usd_per_month is None:
                self._budgets.pop(b.consumer, None)
            else:
                self._budgets[b.consumer] = Budget(usd_per_day=b.usd_per_day, usd_per_month=b.usd_per_month)
        for row in keys:
            self._rows[row.id] = row
        touched = {b.consumer for b in budgets}
        changed = {row.id for row in keys} | {r.id for r in self._rows.values() if r.consumer in touched}
        for key_id in changed:
            self._apply(self._rows[key_id])
        self._revision = max(self._revision, top)
        self.loaded = True
        return True

    def _apply(self, row: Any) -> None:
        self._by_hash.pop(row.key_sha256, None)  # a key's hash never changes: this drops its previous form
        if row.revoked_at is not None:
            self._rows.pop(row.id, None)
            return
        if row.key_sha256 in self._config_hashes or row.consumer in self._config_names:
            self._log.event("key_conflict", level="error", key_id=row.id, consumer=row.consumer)
            return
        if row.tier is not None and row.tier not in self._settings.tiers:
            self._log.event("key_invalid", level="error", key_id=row.id, reason=f"unknown tier {row.tier!r}")
            return
        try:
            self._by_hash[row.key_sha256] = identity_of(row, self._budgets.get(row.consumer))
        except ValidationError:
            self._log.event("key_invalid", level="error", key_id=row.id, reason="invalid fields")

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.refresh()

    async def _listen(self, state: StateClient) -> None:
        """Wake the refresh loop when another replica announces a change; reconnect after a failure."""
        while True:
            pubsub = state.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._refresh_s)
                    if msg is not None:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.event("keys_listen_failed", level="debug", error=type(exc).__name__)
                await self._clock.sleep(self._refresh_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
