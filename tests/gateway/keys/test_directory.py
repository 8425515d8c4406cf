"""The in-memory copy of the keys: what it serves, and how changes reach it."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from typing import Any

import fakeredis
import orjson

from gateway.clock import Clock, FakeClock, SystemClock
from gateway.config import hash_key
from gateway.keys.directory import KeyChanges, KeyDirectory
from gateway.keys.keystore import KeyStore
from gateway.keys.model import KeyCreate, KeyPatch
from gateway.observability.logs import EventLog
from gateway.settings.budget import Budget
from gateway.settings.db import KeySettings
from gateway.store.client import StateClient
from tests.gateway.keys.conftest import CONFIG_KEY, eventually, settings_with


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _directory(
    store: KeyChanges,
    clock: Clock,
    log: io.StringIO | None = None,
    state: StateClient | None = None,
    refresh_s: float = 1.0,
) -> KeyDirectory:
    settings = settings_with("sqlite://", database={"url": "sqlite://", "keys": {"refresh_s": refresh_s}})
    return KeyDirectory(store, settings, clock=clock, log=EventLog(SystemClock(), stream=log), state=state)


class Flaky:
    """The store until ``down`` is set, then a database that cannot be reached."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.down = False

    async def changes(self, since: int) -> tuple[int, Sequence[Any], Sequence[Any]]:
        if self.down:
            raise OSError("connection refused")
        return await self.store.changes(since)


async def test_a_refresh_brings_in_created_changed_and_revoked_keys(store: KeyStore, clock: FakeClock) -> None:
    d = _directory(store, clock)
    made = await store.create(KeyCreate(name="a", tier="gold", models=["mini"], tags={"t": "1"}), actor="t")
    assert d.lookup(_digest(made.secret)) is None
    assert await d.refresh()
    found = d.lookup(_digest(made.secret))
    assert found is not None
    assert (found.key_id, found.key_name, found.consumer.name, found.consumer.tier) == (
        made.row.id,
        "a",
        made.row.id,
        "gold",
    )
    assert found.consumer.models == ("mini",) and found.tags == {"t": "1"}
    await store.update(made.row.id, KeyPatch(priority=9), actor="t")
    await d.refresh()
    again = d.lookup(_digest(made.secret))
    assert again is not None and again.consumer.priority == 9
    await store.revoke(made.row.id, actor="t")
    await d.refresh()
    assert d.lookup(_digest(made.secret)) is None and len(d) == 0


async def test_an_expired_key_is_refused_at_its_expiry(store: KeyStore, clock: FakeClock) -> None:
    d = _directory(store, clock)
    spec = KeyCreate.model_validate({"name": "a", "expires_at": "2026-01-01T00:00:10Z"})  # clock starts at 00:00:00
    made = await store.create(spec, actor="t")
    await d.refresh()
    assert d.lookup(_digest(made.secret)) is not None
    clock.advance(10)
    assert d.lookup(_digest(made.secret)) is None


async def test_a_key_that_would_shadow_the_configuration_is_not_loaded(store: KeyStore, clock: FakeClock) -> None:
    lines = io.StringIO()
    d = _directory(store, clock, lines)
    clash = await store.create(KeyCreate(name="a", consumer="configured"), actor="t")
    await d.refresh()
    assert d.lookup(_digest(clash.secret)) is None
    assert d.lookup(hash_key(CONFIG_KEY)) is None  # the configured key is the key ring's, not the directory's
    events = [orjson.loads(x) for x in lines.getvalue().splitlines()]
    assert [(e["event"], e["key_id"]) for e in events] == [("key_conflict", clash.row.id)]


async def test_a_consumer_budget_reaches_its_keys(store: KeyStore, clock: FakeClock) -> None:
    d = _directory(store, clock)
    made = await store.create(KeyCreate(name="a", consumer="team-x", budget=Budget(usd_per_day=1)), actor="t")
    await d.refresh()
    await store.set_consumer_budget("team-x", 5.0, 50.0, actor="t")
    await d.refresh()
    found = d.lookup(_digest(made.secret))
    assert found is not None and found.key_budget is not None and found.key_budget.usd_per_day == 1
    assert found.consumer.budget is not None and found.consumer.budget.usd_per_month == 50.0


async def test_an_unreachable_database_keeps_the_last_copy(store: KeyStore, clock: FakeClock) -> None:
    lines = io.StringIO()
    flaky = Flaky(store)
    d = _directory(flaky, clock, lines)
    made = await store.create(KeyCreate(name="a"), actor="t")
    await d.refresh()
    flaky.down = True
    await store.revoke(made.row.id, actor="t")  # cannot be read while the database is unreachable
    assert not await d.refresh()
    assert d.lookup(_digest(made.secret)) is not None
    assert "keys_refresh_failed" in lines.getvalue()
    flaky.down = False
    assert await d.refresh()
    assert d.lookup(_digest(made.secret)) is None


async def test_an_announcement_wakes_the_other_replicas_at_once(database_url: str, store: KeyStore) -> None:
    server = fakeredis.FakeServer()
    clock = SystemClock()
    observer = fakeredis.FakeAsyncRedis(server=server)
    a = _directory(store, clock, state=fakeredis.FakeAsyncRedis(server=server))
    b = _directory(store, clock, state=fakeredis.FakeAsyncRedis(server=server), refresh_s=60.0)  # polls too late
    await a.start()
    await b.start()
    try:

        async def listening() -> bool:  # both replicas' listeners have subscribed
            [(_, n)] = await observer.pubsub_numsub(KeySettings().channel)
            return int(n) == 2

        await eventually(listening, within_s=30.0)
        made = await store.create(KeyCreate(name="a"), actor="t")
        await a.announce()

        async def arrived() -> bool:
            return b.lookup(_digest(made.secret)) is not None

        await eventually(arrived, within_s=30.0)  # well before b's own poll (60 s): the announcement woke it
    finally:
        await a.stop()
        await b.stop()


async def test_a_reloaded_configuration_checks_every_key_again(store: KeyStore, clock: FakeClock) -> None:
    d = _directory(store, clock)
    gold = await store.create(KeyCreate(name="a", tier="gold"), actor="t")
    team = await store.create(KeyCreate(name="b", consumer="team-x"), actor="t")
    await d.refresh()
    assert d.lookup(_digest(gold.secret)) is not None and d.lookup(_digest(team.secret)) is not None
    d.follow(
        settings_with(
            "sqlite://",
            consumers=[{"name": "team-x", "key_sha256": hash_key("fl-other")}],  # now a configured consumer
            tiers={"default": {}},  # gold is gone
        )
    )
    assert (d.lookup(_digest(gold.secret)), d.lookup(_digest(team.secret))) == (None, None)
    d.follow(settings_with("sqlite://"))
    assert d.lookup(_digest(gold.secret)) is not None and d.lookup(_digest(team.secret)) is not None
