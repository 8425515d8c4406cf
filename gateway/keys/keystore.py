"""Virtual keys and consumer budgets in the database, every change with its audit record in one transaction.

Each change bumps the ``keys`` change counter first: on PostgreSQL the counter's row lock, on SQLite the write
lock, serialises the changing transactions, so revisions commit in order and a reader that has seen revision N
has seen every change up to N (:meth:`KeyStore.changes`). A key is never deleted: revoking stamps
``revoked_at``, so the audit trail and the usage records keep naming it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.clock import Clock
from gateway.db.schema import audit_log, change_counter, consumer_budgets, virtual_keys
from gateway.keys.model import KeyCreate, KeyPatch

KEY_PREFIX = "fl-"
_REVISION = select(change_counter.c.value).where(change_counter.c.name == "keys")


def new_secret() -> str:
    """A new API key: 32 random bytes from the OS (a secret, so never from the simulation's seeded RNG)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    return "key_" + secrets.token_hex(8)


def hint(secret: str) -> str:
    return f"{secret[:3]}…{secret[-4:]}"


@dataclass(frozen=True, slots=True)
class Created:
    row: Row[Any]
    secret: str  # shown once, to whoever created the key


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Request fields -> column values (budget and expiry are stored flat, as numbers)."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k == "budget":
            out["usd_per_day"] = None if v is None else v.get("usd_per_day")
            out["usd_per_month"] = None if v is None else v.get("usd_per_month")
        elif k == "expires_at":
            out[k] = None if v is None else v.timestamp()
        else:
            out[k] = v
    return out


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        secret: Callable[[], str] = new_secret,
        ids: Callable[[], str] = new_id,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._secret = secret
        self._ids = ids

    async def _bump(self, conn: AsyncConnection) -> int:
        await conn.execute(
            update(change_counter).where(change_counter.c.name == "keys").values(value=change_counter.c.value + 1)
        )
        return int((await conn.execute(_REVISION)).one()[0])

    async def _audit(self, conn: AsyncConnection, actor: str, action: str, target: str, detail: Any) -> None:
        await conn.execute(
            insert(audit_log).values(ts=self._clock.now(), actor=actor, action=action, target=target, detail=detail)
        )

    async def create(self, spec: KeyCreate, *, actor: str) -> Created:
        secret = self._secret()
        key_id = self._ids()
        now = self._clock.now()
        fields = _columns(spec.model_dump(mode="python", exclude={"expires_at"}))
        fields["expires_at"] = None if spec.expires_at is None else spec.expires_at.timestamp()
        fields["consumer"] = spec.consumer or key_id
        async with self.engine.begin() as conn:
            revision = await self._bump(conn)
            await conn.execute(
                insert(virtual_keys).values(
                    id=key_id,
                    key_sha256=hashlib.sha256(secret.encode()).hexdigest(),
                    key_hint=hint(secret),
                    created_at=now,
                    updated_at=now,
                    revoked_at=None,
                    revision=revision,
                    **fields,
                )
            )
            detail = spec.model_dump(mode="json", exclude_none=True) | {"consumer": fields["consumer"]}
            await self._audit(conn, actor, "key.create", key_id, detail)
            row = (await conn.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))).one()
        return Created(row, secret)

    async def get(self, key_id: str) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))).one_or_none()

    async def list(self, *, limit: int = 100, after: str | None = None, revoked: bool = False) -> Sequence[Row[Any]]:
        """Keys by id, ``limit`` at most, after the id ``after`` (paging); revoked ones only when asked."""
        q = select(virtual_keys).order_by(virtual_keys.c.id).limit(limit)
        if after is not None:
            q = q.where(virtual_keys.c.id > after)
        if not revoked:
            q = q.where(virtual_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).all()

    async def update(self, key_id: str, patch: KeyPatch, *, actor: str) -> Row[Any] | None:
        """Apply the fields present in ``patch``. ``None``: no such key, or it is revoked."""
        given = patch.model_dump(mode="python", include=patch.model_fields_set)
        changes = _columns({k: v for k, v in given.items() if k != "expires_at"})
        if "expires_at" in given:
            changes["expires_at"] = None if patch.expires_at is None else patch.expires_at.timestamp()
        for required in ("name", "priority", "permissions", "tags"):  # present but null: not a valid change
            if required in changes and changes[required] is None:
                changes.pop(required)
        async with self.engine.begin() as conn:
            live = virtual_keys.c.id == key_id, virtual_keys.c.revoked_at.is_(None)
            if (await conn.execute(select(virtual_keys.c.id).where(*live))).one_or_none() is None:
                return None
            revision = await self._bump(conn)
            await conn.execute(
                update(virtual_keys).where(*live).values(updated_at=self._clock.now(), revision=revision, **changes)
            )
            await self._audit(conn, actor, "key.update", key_id, patch.model_dump(mode="json", include=set(given)))
            return (await conn.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))).one()

    async def revoke(self, key_id: str, *, actor: str) -> Row[Any] | None:
        """Revoke a key (once; revoking again changes nothing). ``None``: no such key."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))).one_or_none()
            if row is None or row.revoked_at is not None:
                return row
            revision = await self._bump(conn)
            now = self._clock.now()
            await conn.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id)
                .values(revoked_at=now, updated_at=now, revision=revision)
            )
            await self._audit(conn, actor, "key.revoke", key_id, {})
            return (await conn.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))).one()

    async def set_consumer_budget(
        self, consumer: str, usd_per_day: float | None, usd_per_month: float | None, *, actor: str
    ) -> None:
        async with self.engine.begin() as conn:
            revision = await self._bump(conn)
            values = {
                "usd_per_day": usd_per_day,
                "usd_per_month": usd_per_month,
                "updated_at": self._clock.now(),
                "revision": revision,
            }
            done = await conn.execute(
                update(consumer_budgets).where(consumer_budgets.c.consumer == consumer).values(**values)
            )
            if done.rowcount == 0:
                await conn.execute(insert(consumer_budgets).values(consumer=consumer, **values))
            detail = {"usd_per_day": usd_per_day, "usd_per_month": usd_per_month}
            await self._audit(conn, actor, "consumer.budget", consumer, detail)

    async def consumer_budgets(self) -> dict[str, tuple[float | None, float | None]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(consumer_budgets))).all()
        return {r.consumer: (r.usd_per_day, r.usd_per_month) for r in rows}

    async def changes(self, since: int) -> tuple[int, Sequence[Row[Any]], Sequence[Row[Any]]]:
        """(the newest revision, keys changed after ``since``, consumer budgets changed after ``since``)."""
        async with self.engine.connect() as conn:
            top = int((await conn.execute(_REVISION)).one()[0])
            keys = (await conn.execute(select(virtual_keys).where(virtual_keys.c.revision > since))).all()
            budgets = (await conn.execute(select(consumer_budgets).where(consumer_budgets.c.revision > since))).all()
        return top, keys, budgets

    async def audit(self, *, limit: int = 100, target: str | None = None) -> Sequence[Row[Any]]:
        q = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if target is not None:
            q = q.where(audit_log.c.target == target)
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).all()

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(virtual_keys))).one()[0])
