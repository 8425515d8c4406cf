"""A run's request records read from the gateway's database (the ``record`` column of ``usage_records``, the same
objects as the lines of ``requests.jsonl``), for ``python -m reports RUN_DIR --database URL``.

The URL is the gateway's ``database.url``: ``postgresql://…`` or ``sqlite:///…`` (given their async drivers
here). Records are read in the order they were written, for the run id in the run's ``run.json``.
"""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
_QUERY = text("SELECT record FROM usage_records WHERE run_id = :run AND record IS NOT NULL ORDER BY id")


def _async(url: str) -> str:
    u = make_url(url)
    driver = _DRIVERS.get(u.get_backend_name())
    if driver is None:
        raise ValueError(f"unsupported database {u.get_backend_name()!r}: use postgresql:// or sqlite:///")
    return u.set(drivername=driver).render_as_string(hide_password=False)


async def _read(url: str, run_id: str) -> list[bytes]:
    engine = create_async_engine(_async(url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(_QUERY, {"run": run_id})).all()
    finally:
        await engine.dispose()
    out = []
    for (record,) in rows:
        value = orjson.loads(record) if isinstance(record, str | bytes) else record
        out.append(orjson.dumps(value))
    return out


def request_lines(url: str, run_id: str) -> list[bytes]:
    """The run's records as request-log lines, oldest first."""
    return asyncio.run(_read(url, run_id))
