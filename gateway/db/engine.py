"""Engines for the two supported databases. Plain URLs are accepted and given their async driver:

postgresql://user@host:5432/db  ->  postgresql+asyncpg://user@host:5432/db
sqlite:///path/to/file.db       ->  sqlite+aiosqlite:///path/to/file.db
sqlite://  (or sqlite:///:memory:)  an in-memory database, one shared connection (tests)
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class DatabaseUrlError(ValueError):
    """The database URL names no supported database."""


def async_url(url: str) -> str:
    """The URL with its async driver. Raises :class:`DatabaseUrlError` for anything but PostgreSQL and SQLite."""
    try:
        u = make_url(url)
    except Exception:
        raise DatabaseUrlError(f"not a database URL: {redact(url)}") from None
    backend = u.get_backend_name()
    if backend not in _DRIVERS:
        raise DatabaseUrlError(f"unsupported database {backend!r}: use postgresql:// or sqlite:///")
    if u.drivername in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return u.render_as_string(hide_password=False)
    return u.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid URL>"


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def create_engine(url: str, *, pool_size: int = 5, timeout_s: float = 5.0) -> AsyncEngine:
    full = async_url(url)
    u = make_url(full)
    if u.get_backend_name() == "sqlite":
        memory = u.database in (None, "", ":memory:")
        kwargs: dict[str, object] = {"connect_args": {"timeout": timeout_s}}
        if memory:  # one connection, or every checkout would see a new, empty database
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_async_engine(full, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: object, _record: object) -> None:
            # Ignored on the next line: the hook's DB-API connection is untyped (sqlite3 here)
            cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the usage writer
            cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cur.close()

        return engine
    return create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_s,
        pool_pre_ping=True,
        connect_args={"timeout": timeout_s, "command_timeout": timeout_s},
    )
