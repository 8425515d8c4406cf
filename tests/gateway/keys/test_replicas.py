"""Two replicas sharing one database and one Redis: a key created on one works on the other within 2 s, and a
revoked key is refused on both within 2 s, without a restart (the bound of docs/KEYS.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.keys.conftest import eventually
from tests.gateway.keys.test_admin_api import ADMIN, chat, settings

BOUND_S = 2.0


@contextlib.asynccontextmanager
async def replica(database_url: str, state: Any) -> AsyncIterator[httpx.AsyncClient]:
    clock = SystemClock()
    sims = {
        "http://openai.sim": create_simulator(flavour="openai", profile="instant", seed=1, name="openai", clock=clock),
        "http://vllm.sim": create_simulator(flavour="vllm", profile="instant", seed=1, name="vllm", clock=clock),
    }
    app = create_app(settings(database_url), clock=clock, state=state, upstream_transport=AsgiTransport(sims))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


@pytest.fixture
async def states(redis_url: str | None) -> AsyncIterator[tuple[Any, Any]]:
    if redis_url:
        pair: tuple[Any, Any] = (aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url))
    else:
        server = fakeredis.FakeServer()
        pair = (fakeredis.FakeAsyncRedis(server=server), fakeredis.FakeAsyncRedis(server=server))
    yield pair
    for s in pair:
        await s.aclose()


async def test_created_and_revoked_keys_take_effect_on_every_replica(database_url: str, states: Any) -> None:
    async with replica(database_url, states[0]) as a, replica(database_url, states[1]) as b:
        made = (await a.post("/admin/keys", json={"name": "roaming"}, headers=ADMIN)).json()

        async def works_on_b() -> bool:
            return (await chat(b, made["key"])).status_code == 200

        await eventually(works_on_b, within_s=BOUND_S)
        assert (await a.delete(f"/admin/keys/{made['id']}", headers=ADMIN)).status_code == 200

        async def refused_on_both() -> bool:
            return {(await chat(a, made["key"])).status_code, (await chat(b, made["key"])).status_code} == {401}

        await eventually(refused_on_both, within_s=BOUND_S)
