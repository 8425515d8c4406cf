"""Idempotency-Key through a whole gateway: replays make no upstream call, charge nothing, and keep their
semantics (422 for another body, 409 while running), upstream calls counted at the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from gateway.transport import Transport
from tests.gateway.conftest import DEMO_KEY, OTHER_KEY, GatewayFactory, Recording, make_settings

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def post(client: httpx.AsyncClient, body: dict[str, Any], key: str | None, auth: str = DEMO_KEY) -> Any:
    headers = {"Authorization": f"Bearer {auth}"} | ({"Idempotency-Key": key} if key else {})
    return await client.post("/v1/chat/completions", json=body, headers=headers)


def recording() -> tuple[list[Recording], Callable[[Transport], Transport]]:
    """The transport to the simulators, counting every upstream call."""
    made: list[Recording] = []

    def wrap(inner: Transport) -> Transport:
        made.append(Recording(inner))
        return made[-1]

    return made, wrap


async def test_a_retry_gets_the_first_answer_without_calling_upstream(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    client = await make_gateway(wrap=wrap)
    first = await post(client, BODY, "order-1")
    second = await post(client, BODY, "order-1")
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(calls[0].sent) == 1
    third = await post(client, BODY, "order-2")
    assert third.json()["id"] != first.json()["id"] and len(calls[0].sent) == 2


async def test_a_completed_stream_is_replayed_as_sse(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    client = await make_gateway(wrap=wrap)
    body = BODY | {"stream": True}
    first = await post(client, body, "s-1")
    second = await post(client, body, "s-1")
    assert len(calls[0].sent) == 1
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.text == first.text and second.text.endswith("data: [DONE]\n\n")
    assert second.headers["idempotent-replayed"] == "true"


async def test_another_body_with_the_same_key_is_422(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    await post(client, BODY, "k")
    r = await post(client, BODY | {"max_tokens": 6}, "k")
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert (await post(client, BODY, "k")).status_code == 200  # the first answer is still there
    assert (await post(client, BODY, "k", auth=OTHER_KEY)).headers.get("idempotent-replayed") is None  # per consumer


class Gate:
    """A transport that holds each upstream call until released: the first request is running for sure."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float) -> Any:
        self.entered.set()
        await self.release.wait()
        return await self.inner.send(url, headers, body, connect_timeout=connect_timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_retry_while_the_first_runs_is_409(make_gateway: GatewayFactory) -> None:
    gates: list[Gate] = []

    def wrap(inner: Transport) -> Transport:
        gates.append(Gate(inner))
        return gates[-1]

    client = await make_gateway(wrap=wrap)
    first = asyncio.ensure_future(post(client, BODY, "slow"))
    await gates[0].entered.wait()
    r = await post(client, BODY, "slow")
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_in_progress"
    assert int(r.headers["retry-after"]) >= 1
    gates[0].release.set()
    assert (await first).status_code == 200
    assert (await post(client, BODY, "slow")).headers["idempotent-replayed"] == "true"


async def test_a_replay_charges_no_quota(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()  # consumer "other" may send 2 requests a minute
    assert (await post(client, BODY, "q", auth=OTHER_KEY)).status_code == 200
    for _ in range(3):
        assert (await post(client, BODY, "q", auth=OTHER_KEY)).headers["idempotent-replayed"] == "true"
    assert (await post(client, BODY, None, auth=OTHER_KEY)).status_code == 200  # the second of the minute
    assert (await post(client, BODY, None, auth=OTHER_KEY)).status_code == 429


async def test_a_bad_key_is_400(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    r = await post(client, BODY, "x" * 256)
    assert r.status_code == 400 and r.json()["error"]["param"] == "idempotency-key"


async def test_turned_off_it_is_ignored(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(make_settings(idempotency={"enabled": False}))
    a, b = await post(client, BODY, "k"), await post(client, BODY, "k")
    assert orjson.loads(a.content)["id"] != orjson.loads(b.content)["id"]


async def test_an_error_is_kept_and_a_rate_limit_is_not(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    down = {
        "timeline": [
            {
                "type": "degradation",
                "start_s": 0,
                "end_s": 3600,
                "failure-injection-rate": 1.0,
                "failure-types": ["server_error"],
            }
        ]
    }
    client = await make_gateway(make_settings(router={"retry": {"max_attempts": 1}}), openai_profile=down, wrap=wrap)
    first = await post(client, BODY, "e")
    assert first.status_code >= 500
    n = len(calls[0].sent)
    again = await post(client, BODY, "e")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true" and len(calls[0].sent) == n
    for _ in range(2):  # consumer "other" may send 2 requests a minute
        await post(client, BODY, None, auth=OTHER_KEY)
    assert (await post(client, BODY, "r", auth=OTHER_KEY)).status_code == 429
    retry = await post(client, BODY, "r", auth=OTHER_KEY)
    assert retry.status_code == 429 and "idempotent-replayed" not in retry.headers  # a 429 released the key
