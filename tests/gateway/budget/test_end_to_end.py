"""A key with a $0.01/day budget, used through two replicas sharing a database and Redis: every request fits
until the next one's worst case would not, then 403 budget_exceeded on both; the spend never passes $0.01 and
is what the client's own log adds up to."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import hash_key
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.conftest import make_settings
from tests.gateway.keys.conftest import eventually
from tests.gateway.keys.test_admin_api import ADMIN, ADMIN_KEY

PRICE_IN, PRICE_OUT = 15.0, 60.0  # USD per million tokens: $0.01 buys about twenty small requests
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


def settings(database_url: str) -> Any:
    return make_settings(
        admin_key_sha256=hash_key(ADMIN_KEY),
        database={"url": database_url},
        prices={"gpt-4o-mini": {"input_per_1m": PRICE_IN, "output_per_1m": PRICE_OUT}},
    )


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


async def arrives(replica: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Wait (at most the 2 s bound of docs/KEYS.md) until the replica knows the new key."""

    async def known() -> bool:
        return (await replica.get("/v1/models", headers=auth)).status_code == 200

    await eventually(known, within_s=2.0)


def cost(usage: dict[str, int]) -> float:
    return (usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT) / 1e6


async def test_a_cent_a_day_is_refused_exactly_across_two_replicas(database_url: str, states: Any) -> None:
    async with replica(database_url, states[0]) as a, replica(database_url, states[1]) as b:
        made = await a.post("/admin/keys", json={"name": "cent", "budget": {"usd_per_day": 0.01}}, headers=ADMIN)
        key = made.json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        await arrives(b, auth)
        spent: list[float] = []
        remaining: list[float] = []
        refusal = None
        for i in range(200):
            r = await (a, b)[i % 2].post("/v1/chat/completions", json=BODY, headers=auth)
            if r.status_code != 200:
                refusal = r
                break
            spent.append(cost(r.json()["usage"]))
            remaining.append(float(r.headers["x-ratelimit-remaining-usd-day"]))
        assert refusal is not None and refusal.status_code == 403
        err = refusal.json()["error"]
        assert (err["type"], err["code"]) == ("insufficient_quota", "budget_exceeded")
        assert "resets at" in err["message"] and refusal.headers["x-should-retry"] == "false"
        assert len(spent) >= 10 and sum(spent) <= 0.01
        # refused only once the worst case of the next request no longer fits in what is left
        match = re.search(r"may cost up to \$([0-9.]+)\.", err["message"])
        assert match is not None and 0.01 - sum(spent) < float(match.group(1))
        assert remaining == sorted(remaining, reverse=True) and remaining[-1] >= 0
        # the other replica refuses it too
        again = await (b, a)[len(spent) % 2].post("/v1/chat/completions", json=BODY, headers=auth)
        assert again.status_code == 403


async def test_concurrent_requests_never_overspend(database_url: str, states: Any) -> None:
    async with replica(database_url, states[0]) as a, replica(database_url, states[1]) as b:
        made = await a.post("/admin/keys", json={"name": "burst", "budget": {"usd_per_day": 0.01}}, headers=ADMIN)
        auth = {"Authorization": f"Bearer {made.json()['key']}"}
        await arrives(b, auth)
        replies = await asyncio.gather(
            *((a, b)[i % 2].post("/v1/chat/completions", json=BODY, headers=auth) for i in range(60))
        )
        ok = [r for r in replies if r.status_code == 200]
        assert {r.status_code for r in replies} == {200, 403}
        assert sum(cost(r.json()["usage"]) for r in ok) <= 0.01
