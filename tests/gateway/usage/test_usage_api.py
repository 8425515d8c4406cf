"""GET /admin/usage grouped by key returns what a client counts in its own log."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import hash_key
from tests.gateway.conftest import GatewayFactory, make_settings
from tests.gateway.keys.conftest import eventually

ADMIN_KEY = "fl-admin-usage-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_usage_by_key_matches_the_clients_own_log(make_gateway: GatewayFactory, database_url: str) -> None:
    settings = make_settings(
        admin_key_sha256=hash_key(ADMIN_KEY),
        database={"url": database_url, "usage": {"flush_interval_s": 0.02}},
        prices={"gpt-4o-mini": {"input_per_1m": 150.0, "output_per_1m": 600.0}},
    )
    client = await make_gateway(settings)
    made = (await client.post("/admin/keys", json={"name": "app"}, headers=ADMIN)).json()
    own: list[dict[str, Any]] = []
    for i in range(6):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 3 + i}
        r = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {made['key']}"})
        assert r.status_code == 200
        own.append(r.json()["usage"])

    async def recorded() -> bool:
        page = (await client.get("/admin/usage", params={"group_by": "key"}, headers=ADMIN)).json()
        return bool(sum(row["requests"] for row in page["data"]) == len(own))

    await eventually(recorded, within_s=5.0)
    page = (await client.get("/admin/usage", params={"group_by": "key,model"}, headers=ADMIN)).json()
    [row] = page["data"]
    tokens_in = sum(u["prompt_tokens"] for u in own)
    tokens_out = sum(u["completion_tokens"] for u in own)
    assert (row["key_id"], row["key_name"], row["model"]) == (made["id"], "app", "gpt-4o-mini")
    assert (row["requests"], row["errors"], row["tokens_in"], row["tokens_out"]) == (6, 0, tokens_in, tokens_out)
    assert row["cost_usd"] == pytest.approx((tokens_in * 150 + tokens_out * 600) / 1e6)
    assert row["latency_p95_s"] >= row["latency_p50_s"] > 0


async def test_bad_usage_queries_get_clear_errors(make_gateway: GatewayFactory, database_url: str) -> None:
    client = await make_gateway(make_settings(admin_key_sha256=hash_key(ADMIN_KEY), database={"url": database_url}))
    for params, param in (
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "key,key"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"limit": "0"}, "limit"),
    ):
        r = await client.get("/admin/usage", params=params, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == param
    ok = await client.get("/admin/usage", params={"from": "2026-01-01", "to": "2026-01-02T00:00:00Z"}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["from"] == "2026-01-01T00:00:00Z"
