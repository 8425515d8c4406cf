"""The state store unreachable: a budgeted request is refused with 503 (a dollar cap stays a cap), or goes on
unchecked when the policy says open; a consumer without a budget is not affected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import hash_key
from gateway.state import connect_state
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.gateway.conftest import DEMO_KEY, OTHER_KEY, make_settings

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def settings(policy: str) -> Any:
    return make_settings(
        consumers=[
            {"name": "demo", "key_sha256": hash_key(DEMO_KEY), "budget": {"usd_per_day": 1.0}},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY)},
        ],
        prices={"gpt-4o-mini": {"input_per_1m": 1.0, "output_per_1m": 1.0}},
        budget={"failure_policy": policy},
    )


@pytest.mark.parametrize(("policy", "status"), [("closed", 503), ("open", 200)])
async def test_a_budgeted_request_with_the_store_down(policy: str, status: int) -> None:
    clock = SystemClock()
    sims = {"http://openai.sim": create_simulator(flavour="openai", profile="instant", seed=1, clock=clock)}
    state = connect_state("redis://127.0.0.1:9/0", timeout_s=0.1)  # nothing listens on port 9
    app = create_app(settings(policy), clock=clock, state=state, upstream_transport=AsgiTransport(sims))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        budgeted = await c.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {DEMO_KEY}"})
        assert budgeted.status_code == status
        if status == 503:
            assert budgeted.json()["error"]["code"] == "service_unavailable" and "budget" in budgeted.text
        free = await c.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {OTHER_KEY}"})
        assert free.status_code == 200
    await state.aclose()  # closes its pool too (gateway/state.py)
