"""A migrated database and a key store on it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.clock import FakeClock
from gateway.config import Settings, hash_key, parse_settings
from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.keys.keystore import KeyStore

CONFIG_KEY = "fl-config-key-0001"


def settings_with(database_url: str | None = None, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "consumers": [{"name": "configured", "key_sha256": hash_key(CONFIG_KEY)}],
        "tiers": {"default": {}, "gold": {"rpm": 100}},
        "providers": [{"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"}],
        "models": [
            {"name": "gpt-4o-mini", "aliases": ["mini"], "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            {"name": "gpt-4o", "routes": [{"provider": "openai", "model": "gpt-4o"}]},
        ],
        "database": {"url": database_url},
    }
    raw.update(overrides)
    return parse_settings(raw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[KeyStore]:
    engine = create_engine(database_url)
    await upgrade(engine)
    secrets = iter(f"fl-secret-{i:04d}" for i in range(1000))
    ids = iter(f"key_{i:04d}" for i in range(1000))
    yield KeyStore(engine, clock=clock, secret=lambda: next(secrets), ids=lambda: next(ids))
    await engine.dispose()


async def eventually(condition: Callable[[], Awaitable[bool]], *, within_s: float) -> float:
    """Poll ``condition`` until it holds; fail if it does not within ``within_s``. Returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(within_s):
        for _ in itertools.count():
            if await condition():
                break
            await asyncio.sleep(0.01)
    return loop.time() - start
