"""Per-consumer and per-tier model allowlists: 403 model_not_allowed, and /v1/models lists only what a key may use."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gateway.config import ConfigError, hash_key, parse_settings
from tests.gateway.conftest import DEMO_KEY, OTHER_KEY, make_settings, sdk

TIERED_KEY = "fl-test-tiered-key"
MSG: list[Any] = [{"role": "user", "content": "hi"}]


def settings() -> Any:
    return make_settings(
        tiers={"default": {}, "small": {"models": ["llama"]}},
        consumers=[
            {"name": "demo", "key_sha256": hash_key(DEMO_KEY)},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY), "models": ["gpt-4o-mini"]},
            {"name": "tiered", "key_sha256": hash_key(TIERED_KEY), "tier": "small"},
        ],
        models=[
            {"name": "gpt-4o-mini", "aliases": ["chat"], "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            {"name": "llama", "routes": [{"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct"}]},
        ],
    )


@pytest.mark.parametrize(
    ("key", "allowed", "refused"),
    [
        (DEMO_KEY, ["gpt-4o-mini", "chat", "llama"], []),
        (OTHER_KEY, ["gpt-4o-mini", "chat"], ["llama"]),
        (TIERED_KEY, ["llama"], ["gpt-4o-mini", "chat"]),
    ],
)
async def test_allowlists(make_gateway: Any, key: str, allowed: list[str], refused: list[str]) -> None:
    client = sdk(await make_gateway(settings()), key)
    listed = sorted([m.id async for m in client.models.list()])
    assert listed == sorted(allowed)
    for model in allowed:
        resp = await client.chat.completions.create(model=model, messages=MSG, max_tokens=2)
        assert resp.choices
    for model in refused:
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(model=model, messages=MSG, max_tokens=2)
        assert info.value.code == "model_not_allowed" and info.value.status_code == 403


async def test_unknown_model_is_still_not_found(make_gateway: Any) -> None:
    client = sdk(await make_gateway(settings()), OTHER_KEY)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=MSG)


@pytest.mark.parametrize(
    "override",
    [
        {"consumers": [{"name": "c", "key_sha256": hash_key("k"), "models": ["nope"]}]},
        {"tiers": {"default": {"models": ["nope"]}}},
    ],
)
def test_unknown_names_fail_the_configuration(override: dict[str, Any]) -> None:
    raw = make_settings().model_dump(mode="json") | override
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        parse_settings(raw)
