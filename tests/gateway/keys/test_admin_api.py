"""The admin API of virtual keys, through a whole gateway on a real database (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from gateway.config import hash_key
from tests.gateway.conftest import DEMO_KEY, GatewayFactory, make_settings

ADMIN_KEY = "fl-admin-test-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def settings(database_url: str | None) -> Any:
    return make_settings(admin_key_sha256=hash_key(ADMIN_KEY), database={"url": database_url})


async def chat(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=CHAT | body, headers={"Authorization": f"Bearer {key}"})


async def test_a_created_key_works_at_once_and_a_revoked_one_is_refused(
    make_gateway: GatewayFactory, database_url: str
) -> None:
    client = await make_gateway(settings(database_url))
    r = await client.post("/admin/keys", json={"name": "search"}, headers=ADMIN)
    assert r.status_code == 201
    made = r.json()
    assert made["key"].startswith("fl-") and made["status"] == "active" and made["consumer"] == made["id"]
    assert (await chat(client, made["key"])).status_code == 200
    listed = (await client.get("/admin/keys", headers=ADMIN)).json()
    assert [k["id"] for k in listed["data"]] == [made["id"]] and "key" not in listed["data"][0]
    r = await client.delete(f"/admin/keys/{made['id']}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    refused = await chat(client, made["key"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert made["key"] not in refused.text


async def test_a_patch_applies_the_model_allowlist_and_is_audited(
    make_gateway: GatewayFactory, database_url: str
) -> None:
    client = await make_gateway(settings(database_url))
    made = (await client.post("/admin/keys", json={"name": "a", "tags": {"team": "x"}}, headers=ADMIN)).json()
    r = await client.patch(f"/admin/keys/{made['id']}", json={"models": ["llama"]}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["models"] == ["llama"]
    refused = await chat(client, made["key"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert (await chat(client, made["key"], model="llama")).status_code == 200
    trail = (await client.get("/admin/audit", headers=ADMIN, params={"target": made["id"]})).json()["data"]
    assert (trail[0]["action"], trail[0]["detail"]) == ("key.update", {"models": ["llama"]})
    assert trail[0]["actor"].startswith("admin-api:") and ADMIN_KEY not in orjson.dumps(trail).decode()


async def test_bad_requests_get_clear_errors(make_gateway: GatewayFactory, database_url: str) -> None:
    client = await make_gateway(settings(database_url))
    cases = [
        ({"name": ""}, "name"),
        ({"name": "a", "tier": "platinum"}, "tier"),
        ({"name": "a", "models": ["gpt-5"]}, "models"),
        ({"name": "a", "consumer": "demo"}, "consumer"),  # a configured consumer: the sources cannot shadow
        ({"name": "a", "budget": {"usd_per_day": -1}}, "budget.usd_per_day"),
        ({"name": "a", "expires_at": "2027-01-01"}, "expires_at"),  # no time zone
        ({"name": "a", "colour": "red"}, "colour"),
    ]
    for body, param in cases:
        r = await client.post("/admin/keys", json=body, headers=ADMIN)
        assert r.status_code == 400, body
        assert r.json()["error"]["param"] == param, body
    r = await client.post("/admin/keys", content=b"{", headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert (await client.get("/admin/keys/key_nope", headers=ADMIN)).status_code == 404
    assert (await client.patch("/admin/keys/key_nope", json={}, headers=ADMIN)).status_code == 404
    for headers in ({}, {"Authorization": f"Bearer {DEMO_KEY}"}):
        r = await client.post("/admin/keys", json={"name": "a"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_key"


async def test_without_a_database_the_admin_api_says_so(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(settings(None))
    r = await client.post("/admin/keys", json={"name": "a"}, headers=ADMIN)
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_not_configured"
    assert (await chat(client, DEMO_KEY)).status_code == 200


async def test_configured_keys_keep_working_beside_virtual_ones(
    make_gateway: GatewayFactory, database_url: str
) -> None:
    client = await make_gateway(settings(database_url))
    await client.post("/admin/keys", json={"name": "a"}, headers=ADMIN)
    assert (await chat(client, DEMO_KEY)).status_code == 200


async def test_a_consumer_budget_applies_to_virtual_keys_only(make_gateway: GatewayFactory, database_url: str) -> None:
    client = await make_gateway(settings(database_url))
    r = await client.put("/admin/consumers/team-x/budget", json={"usd_per_day": 5}, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {
        "object": "consumer_budget",
        "consumer": "team-x",
        "usd_per_day": 5.0,
        "usd_per_month": None,
    }
    r = await client.put("/admin/consumers/demo/budget", json={"usd_per_day": 5}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "consumer"  # the configuration's own
