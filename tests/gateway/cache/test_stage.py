"""The response cache through a whole gateway: hits make no upstream call (counted at the transport to the
simulators), count against the request quota, and only deterministic 200 answers are kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.cache.stage import cache_key, deterministic
from gateway.transport import Transport
from tests.gateway.conftest import DEMO_KEY, OTHER_KEY, GatewayFactory, Recording, make_settings

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}


def recording() -> tuple[list[Recording], Callable[[Transport], Transport]]:
    made: list[Recording] = []

    def wrap(inner: Transport) -> Transport:
        made.append(Recording(inner))
        return made[-1]

    return made, wrap


async def post(client: httpx.AsyncClient, body: dict[str, Any], key: str = DEMO_KEY, **headers: str) -> Any:
    return await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}", **headers})


def cached(**cache: Any) -> Any:
    return make_settings(cache={"groups": ["gpt-4o-mini"], **cache})


async def test_a_hit_is_the_stored_answer_without_an_upstream_call(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    client = await make_gateway(cached(), wrap=wrap)
    first, second = await post(client, BODY), await post(client, BODY)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.content == first.content and len(calls[0].sent) == 1
    other = await post(client, BODY | {"max_tokens": 6})
    assert other.headers["x-cache"] == "miss" and len(calls[0].sent) == 2


async def test_a_streamed_hit_is_re_streamed(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    client = await make_gateway(cached(), wrap=wrap)
    body = BODY | {"stream": True}
    first, second = await post(client, body), await post(client, body)
    assert second.headers["x-cache"] == "hit" and second.text == first.text
    assert second.text.endswith("data: [DONE]\n\n") and len(calls[0].sent) == 1


async def test_cache_control_and_determinism(make_gateway: GatewayFactory) -> None:
    calls, wrap = recording()
    client = await make_gateway(cached(), wrap=wrap)
    await post(client, BODY)
    assert (await post(client, BODY, **{"cache-control": "no-cache"})).headers["x-cache"] == "miss"
    assert "x-cache" not in (await post(client, BODY, **{"cache-control": "no-store"})).headers
    assert "x-cache" not in (await post(client, BODY | {"temperature": 0.7})).headers
    assert len(calls[0].sent) == 4
    assert "x-cache" not in (await post(client, BODY | {"model": "llama"})).headers  # a group that did not opt in


async def test_per_consumer_or_shared(make_gateway: GatewayFactory) -> None:
    own = await make_gateway(cached())
    await post(own, BODY)
    assert (await post(own, BODY, key=OTHER_KEY)).headers["x-cache"] == "miss"
    shared = await make_gateway(cached(scope="shared"))
    await post(shared, BODY)
    assert (await post(shared, BODY, key=OTHER_KEY)).headers["x-cache"] == "hit"


async def test_a_hit_counts_against_the_request_quota(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(cached())  # consumer "other": 2 requests a minute
    assert (await post(client, BODY, key=OTHER_KEY)).status_code == 200
    assert (await post(client, BODY, key=OTHER_KEY)).headers["x-cache"] == "hit"
    assert (await post(client, BODY, key=OTHER_KEY)).status_code == 429


async def test_errors_are_never_cached(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(
        cached(),
        openai_profile={
            "timeline": [
                {
                    "type": "degradation",
                    "start_s": 0,
                    "end_s": 3600,
                    "failure-injection-rate": 1.0,
                    "failure-types": ["server_error"],
                }
            ]
        },
    )
    first = await post(client, BODY)
    assert first.status_code >= 500
    assert (await post(client, BODY)).headers.get("x-cache") == "miss"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 7}, True),
        ({"temperature": 1}, False),
        ({}, False),
        ({"seed": True}, False),
    ],
)
def test_only_deterministic_requests_are_cacheable(payload: dict[str, Any], expected: bool) -> None:
    assert deterministic(payload) is expected


def test_the_key_ignores_the_user_and_names_the_group() -> None:
    a = cache_key("chat", BODY | {"user": "u1"})
    assert a == cache_key("chat", BODY | {"user": "u2", "model": "alias"})
    assert a != cache_key("other", BODY) and a != cache_key("chat", BODY | {"stream": True})
