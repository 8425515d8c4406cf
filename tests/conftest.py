"""Shared fixtures.

``database_url``: a fresh, empty database for the test: on the PostgreSQL server of ``DATABASE_URL`` when it is
set (CI sets it; an unreachable server fails the test, it never skips), dropped afterwards; else an SQLite file in
the test's temporary directory.

``state_store``: a real Redis server when ``REDIS_URL`` is set (CI sets it; an unreachable server fails the test,
it never skips), else an in-process fakeredis with Lua. Each test gets a fresh key prefix and its keys are
removed afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.processes import real_redis


@pytest.fixture
def redis_url() -> str | None:
    return os.environ.get("REDIS_URL") or None


@pytest.fixture
def redis_server_url(redis_url: str | None) -> Iterator[str]:
    """A real Redis server for tests with several processes: $REDIS_URL, else a private redis-server."""
    yield from real_redis(redis_url)


@pytest.fixture
async def state_store(redis_url: str | None, request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    if redis_url:
        client: aioredis.Redis = aioredis.Redis.from_url(redis_url, socket_timeout=2.0)
        try:
            await client.ping()
        except Exception as exc:  # a configured server must be there
            pytest.fail(f"REDIS_URL={redis_url} is set but the server cannot be reached: {exc!r}")
    else:
        import fakeredis

        client = fakeredis.FakeAsyncRedis()
    yield client
    if redis_url:
        prefix = f"test:{request.node.name}"
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    await client.aclose()


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    server = os.environ.get("DATABASE_URL") or None
    if not server:
        yield f"sqlite:///{tmp_path / 'faultline.db'}"
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(server)
    name = f"{base.database or 'faultline_test'}_{secrets.token_hex(6)}"
    admin_dsn = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
    except Exception as exc:  # a configured server must be there
        pytest.fail(f"DATABASE_URL={server} is set but the server cannot be reached: {exc!r}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests sharing one Redis server never see each other's keys."""
    return f"test:{request.node.name}"
