"""Migrations: they build exactly the tables the code uses, twice is once, and the engine takes plain URLs."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from gateway.db.engine import DatabaseUrlError, async_url, create_engine, redact
from gateway.db.migrate import current, head, upgrade
from gateway.db.schema import metadata


async def test_upgrade_builds_the_schema_the_code_uses(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current(engine) is None
        await upgrade(engine)
        await upgrade(engine)  # a second replica starting finds the schema at head
        assert await current(engine) == head()

        def shape(conn: object) -> dict[str, set[str]]:
            insp = inspect(conn)
            return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}

        async with engine.connect() as conn:
            tables = await conn.run_sync(shape)
        tables.pop("alembic_version")
        assert tables == {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables}
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@db:5432/x", "postgresql+asyncpg://u:pw@db:5432/x"),
        ("postgres://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("sqlite:///var/faultline.db", "sqlite+aiosqlite:///var/faultline.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ],
)
def test_plain_urls_get_their_async_driver(url: str, expected: str) -> None:
    assert async_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@db/x", "not a url", "oracle://db"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(DatabaseUrlError):
        async_url(url)


def test_passwords_never_reach_messages() -> None:
    assert "s3cret" not in redact("postgresql://u:s3cret@db/x")
