"""Saturation metrics on the whole gateway: requests in flight, the provider queue's depth, and the requests shed
when that queue is full."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import KEY, Gateway

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _value(gw: Gateway, sample: str) -> str | None:
    for line in gw.runtime.telemetry.metrics.exposition().decode().splitlines():
        if line.startswith(sample + " "):
            return line.split(" ", 1)[1]
    return None


async def test_in_flight_queue_depth_and_queue_full_sheds(gateway: Callable[..., Any]) -> None:
    shedding = {"provider_limit": 1, "queue_limit": 2, "max_queue_wait_s": 60.0}
    gw: Gateway = await gateway(router={"shedding": shedding})
    gw.upstream.gate = asyncio.Event()

    async def post() -> httpx.Response:
        return await gw.client.post("/v1/chat/completions", json=BODY, headers=KEY)

    held = [asyncio.create_task(post()) for _ in range(3)]  # one at the upstream, two queued behind it
    for _ in range(10_000):  # let the event loop run the three requests up to where they wait (no clock involved)
        if _value(gw, "faultline_queue_depth") == "2.0" and gw.upstream.headers:
            break
        await asyncio.sleep(0)
    assert _value(gw, "faultline_queue_depth") == "2.0"
    assert _value(gw, "faultline_requests_in_flight") == "3.0"

    shed = await post()  # the queue is full: shed at once
    assert (shed.status_code, shed.json()["error"]["code"]) == (503, "overloaded")
    assert _value(gw, 'faultline_shed_requests_total{reason="queue_full"}') == "1.0"

    gw.upstream.gate.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200, 200]
    assert _value(gw, "faultline_queue_depth") == "0.0"
    assert _value(gw, "faultline_requests_in_flight") == "0.0"
    statuses = 'faultline_requests_total{consumer="alice",model="gpt-4o-mini",route="/v1/chat/completions",status='
    assert (_value(gw, statuses + '"200"}'), _value(gw, statuses + '"503"}')) == ("3.0", "1.0")
