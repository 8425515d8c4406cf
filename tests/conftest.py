"""Shared fixtures.

``state_store``: a real Redis server when ``REDIS_URL`` is set (CI sets it; an unreachable server fails the test,
it never skips), else an in-process fakeredis with Lua. Each test gets a fresh key prefix and its keys are
removed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

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
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests sharing one Redis server never see each other's keys."""
    return f"test:{request.node.name}"
