"""The key store: only the hash is stored, every change is audited and ordered by revision."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import select, text

from gateway.clock import FakeClock
from gateway.db.schema import virtual_keys
from gateway.keys.keystore import KeyStore
from gateway.keys.model import KeyCreate, KeyPatch, public


async def test_create_stores_only_the_hash_and_shows_the_secret_once(store: KeyStore) -> None:
    created = await store.create(KeyCreate(name="search team"), actor="tester")
    assert created.secret == "fl-secret-0000"
    assert created.row.key_sha256 == hashlib.sha256(b"fl-secret-0000").hexdigest()
    assert created.row.consumer == created.row.id  # its own consumer unless told otherwise
    async with store.engine.connect() as conn:
        dump = str((await conn.execute(select(virtual_keys))).all())
    assert "fl-secret-0000" not in dump
    shown = public(created.row, now=0)
    assert "fl-secret-0000" not in str(shown) and "key_sha256" not in shown
    assert shown["key_hint"] == "fl-…0000"


async def test_update_changes_only_the_fields_given(store: KeyStore, clock: FakeClock) -> None:
    row = (await store.create(KeyCreate(name="a", models=["gpt-4o"], tags={"team": "x"}), actor="t")).row
    clock.advance(5)
    patch = KeyPatch.model_validate({"budget": {"usd_per_day": 2.5}, "models": None})
    new = await store.update(row.id, patch, actor="t")
    assert new is not None
    assert (new.usd_per_day, new.models, new.tags, new.name) == (2.5, None, {"team": "x"}, "a")
    assert new.updated_at == row.updated_at + 5
    assert new.revision > row.revision


async def test_revoke_is_once_and_a_revoked_key_cannot_change(store: KeyStore) -> None:
    row = (await store.create(KeyCreate(name="a"), actor="t")).row
    revoked = await store.revoke(row.id, actor="t")
    assert revoked is not None and revoked.revoked_at is not None
    again = await store.revoke(row.id, actor="t")
    assert again is not None and again.revision == revoked.revision
    assert await store.update(row.id, KeyPatch(name="b"), actor="t") is None
    assert await store.revoke("key_nope", actor="t") is None
    assert [r.id for r in await store.list()] == []
    assert [r.id for r in await store.list(revoked=True)] == [row.id]


async def test_every_change_has_its_audit_record(store: KeyStore, clock: FakeClock) -> None:
    row = (await store.create(KeyCreate(name="a"), actor="alice")).row
    clock.advance(1)
    await store.update(row.id, KeyPatch(priority=7), actor="bob")
    await store.revoke(row.id, actor="carol")
    await store.set_consumer_budget("team-x", 1.0, None, actor="dave")
    trail = [(r.actor, r.action, r.target) for r in await store.audit()]
    assert trail == [
        ("dave", "consumer.budget", "team-x"),
        ("carol", "key.revoke", row.id),
        ("bob", "key.update", row.id),
        ("alice", "key.create", row.id),
    ]
    assert (await store.audit(target=row.id))[1].detail == {"priority": 7}
    assert (await store.audit())[-1].ts == clock.now() - 1


async def test_changes_are_read_by_revision(store: KeyStore) -> None:
    a = (await store.create(KeyCreate(name="a"), actor="t")).row
    top, keys, _ = await store.changes(0)
    assert (top, [k.id for k in keys]) == (a.revision, [a.id])
    b = (await store.create(KeyCreate(name="b"), actor="t")).row
    await store.set_consumer_budget("c", None, 10.0, actor="t")
    top2, keys2, budgets = await store.changes(top)
    assert [k.id for k in keys2] == [b.id]
    assert [(x.consumer, x.usd_per_month) for x in budgets] == [("c", 10.0)]
    assert top2 == top + 2
    assert (await store.changes(top2))[1:] == ([], [])


async def test_expiry_is_kept_as_epoch_seconds(store: KeyStore) -> None:
    when = datetime(2027, 1, 1, tzinfo=UTC)
    row = (await store.create(KeyCreate(name="a", expires_at=when), actor="t")).row
    assert row.expires_at == when.timestamp()
    assert public(row, now=when.timestamp())["status"] == "expired"
    assert public(row, now=when.timestamp() - 1)["expires_at"] == "2027-01-01T00:00:00Z"
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar() == 1
