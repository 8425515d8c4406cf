"""Quotas through the whole in-process gateway, with the official SDK as the client."""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.conftest import OTHER_KEY, GatewayFactory, make_settings, sdk

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


async def test_rpm_limit_answers_openai_429_and_headers_on_success(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(make_settings(tiers={"default": {}, "t": {"rpm": 2, "tpm": 10_000}}))
    api = sdk(client, OTHER_KEY)  # "other" has its own limits: rpm 2
    ok = await api.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, max_tokens=5)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert ok.headers["x-ratelimit-reset-requests"] == "1m0s"  # the request just admitted leaves the window last
    await api.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as exc:
        await api.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=5)
    err = exc.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1" in err.message
    assert 1 <= int(err.response.headers["retry-after"]) <= 60
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"


async def test_daily_budget_answers_403_insufficient_quota(make_gateway: GatewayFactory) -> None:
    settings = make_settings(
        consumers=[{"name": "other", "key_sha256": make_settings().consumers[1].key_sha256, "limits": {"tpd": 40}}]
    )
    api = sdk(await make_gateway(settings), OTHER_KEY)
    await api.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=20)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        await api.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=20)
    assert exc.value.code == "insufficient_quota"
    assert "It resets at" in exc.value.message


async def test_a_stream_is_charged_its_real_usage(make_gateway: GatewayFactory) -> None:
    settings = make_settings(
        consumers=[{"name": "other", "key_sha256": make_settings().consumers[1].key_sha256, "limits": {"tpm": 5000}}]
    )
    api = sdk(await make_gateway(settings), OTHER_KEY)
    stream = await api.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        max_tokens=400,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
    assert usage is not None
    raw = await api.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    # the second request reserves 3 + 4 + 3 (prompt estimate) + 1; the first holds exactly its usage
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 5000 - usage.total_tokens - 11
