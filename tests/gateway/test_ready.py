"""/v1/ready reports the state store as well as the providers."""

from __future__ import annotations

from typing import Any

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.conftest import make_settings


@pytest.mark.parametrize("store", ["up", "down"])
async def test_ready_reports_the_state_store(store: str) -> None:
    clock = SystemClock()
    sims: dict[str, Any] = {
        f"http://{f}.sim": create_simulator(flavour=f, profile="instant", seed=1, name=f, clock=clock)
        for f in ("openai", "vllm", "gemini")
    }
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    state = fakeredis.FakeAsyncRedis() if store == "up" else dead  # a dead port: an outage from the start
    app = create_app(make_settings(), clock=clock, state=state, upstream_transport=AsgiTransport(sims))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        ready = await c.get("/v1/ready")
    await dead.aclose()
    assert (ready.status_code, ready.json()["state_store"]) == (200, store)  # reported; fail-open still serves
