"""/v1/ready reports the state store as well as the providers: their breakers and their active health checks."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.clock import LoopClock, SystemClock, run_virtual
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
    assert {p["health"] for p in ready.json()["providers"].values()} == {"unchecked"}  # no health_check set


OUTAGE = {"base": "instant", "timeline": [{"type": "outage", "start_s": 0, "mode": "503"}]}
CHECKED = {"interval_s": 5, "timeout_s": 1, "unhealthy_after": 1}


def _checked_app(openai: Any, vllm: Any) -> Any:
    clock = LoopClock()
    sims = {
        "http://openai.sim": create_simulator(flavour="openai", profile=openai, seed=1, clock=clock),
        "http://vllm.sim": create_simulator(flavour="vllm", profile=vllm, seed=1, clock=clock),
    }
    base = make_settings()
    providers = [p.model_dump() for p in base.providers]
    providers[0]["health_check"] = CHECKED  # openai: GET /v1/models
    providers[1]["health_check"] = {**CHECKED, "path": "/health"}  # vllm: GET /health
    settings = make_settings(providers=providers)
    state = fakeredis.FakeAsyncRedis()
    return create_app(settings, clock=clock, state=state, upstream_transport=AsgiTransport(sims))


@pytest.mark.parametrize(
    ("openai", "vllm", "status", "health"),
    [
        ("instant", "instant", 200, ("healthy", "healthy")),
        (OUTAGE, "instant", 200, ("unhealthy", "healthy")),  # one unhealthy provider: the router fails over
        (OUTAGE, OUTAGE, 503, ("unhealthy", "unhealthy")),  # none available
    ],
)
def test_ready_reports_each_providers_health_check(openai: Any, vllm: Any, status: int, health: Any) -> None:
    async def main() -> tuple[int, dict[str, Any], Any]:
        app = _checked_app(openai, vllm)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as c,
        ):
            await asyncio.sleep(1)  # the first checks ran at start, on their own task
            ready = await c.get("/v1/ready")
            registry = app.state.runtime.telemetry.metrics.registry
            gauges = {
                p: registry.get_sample_value("faultline_provider_healthy", {"provider": p}) for p in ("openai", "vllm")
            }
        return ready.status_code, ready.json(), gauges

    got, body, gauges = run_virtual(main())
    providers = body["providers"]
    assert got == status and body["status"] == ("ready" if status == 200 else "unavailable")
    assert (providers["openai"]["health"], providers["vllm"]["health"]) == health
    assert all(p["state"] == "closed" and p["checked_at"] is not None for p in providers.values())
    assert gauges == {p: (1.0 if h == "healthy" else 0.0) for p, h in zip(("openai", "vllm"), health, strict=True)}
