"""A gateway in front of in-process simulators, for the gateway's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import fakeredis
import httpx
import openai
import orjson
import pytest

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import Settings, hash_key, parse_settings
from gateway.transport import AsgiTransport, Transport, UpstreamResponse
from simulators import create_app as create_simulator

DEMO_KEY = "fl-test-demo-key"
OTHER_KEY = "fl-test-other-key"


def make_settings(**overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "seed": 3,
        "consumers": [
            {"name": "demo", "key_sha256": hash_key(DEMO_KEY), "permissions": ["chat", "models", "pin"]},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY), "limits": {"rpm": 2}},
        ],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
        ],
        "models": [
            {"name": "gpt-4o-mini", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            {"name": "llama", "routes": [{"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct"}]},
        ],
    }
    raw.update(overrides)
    return parse_settings(raw)


GEMINI_PROVIDER = {"name": "gemini", "kind": "gemini", "base_url": "http://gemini.sim/v1beta"}
GEMINI_MODEL = {"name": "gemini-flash", "routes": [{"provider": "gemini", "model": "gemini-2.0-flash"}]}


def with_gemini(**overrides: Any) -> Settings:
    """The default settings plus a Gemini provider and a ``gemini-flash`` model group."""
    base = make_settings()
    providers = [p.model_dump() for p in base.providers] + [GEMINI_PROVIDER]
    models = [m.model_dump() for m in base.models] + [GEMINI_MODEL]
    return make_settings(providers=providers, models=models, **overrides)


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Build a gateway (and its simulators) inline: ``client = await make_gateway(settings, openai_profile=...)``."""
    stack: list[Any] = []

    async def build(
        settings: Settings | None = None,
        *,
        openai_profile: str | dict[str, Any] = "instant",
        vllm_profile: str | dict[str, Any] = "instant",
        gemini_profile: str | dict[str, Any] = "instant",
        wrap: Callable[[Transport], Transport] | None = None,
    ) -> httpx.AsyncClient:
        clock = SystemClock()
        sims = {
            "http://openai.sim": create_simulator(
                flavour="openai", profile=openai_profile, seed=1, name="openai", clock=clock
            ),
            "http://vllm.sim": create_simulator(flavour="vllm", profile=vllm_profile, seed=1, name="vllm", clock=clock),
            "http://gemini.sim": create_simulator(
                flavour="gemini", profile=gemini_profile, seed=1, name="gemini", clock=clock
            ),
        }
        app = create_app(
            settings or make_settings(),
            clock=clock,
            state=fakeredis.FakeAsyncRedis(),
            upstream_transport=wrap(AsgiTransport(sims)) if wrap else AsgiTransport(sims),
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        stack.append((lifespan, client))
        return client

    yield build
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


class Recording:
    """A transport that keeps every upstream request (url, headers, decoded JSON body) and passes it on."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, dict[str, str], Any]] = []

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float
    ) -> UpstreamResponse:
        self.sent.append((url, dict(headers), orjson.loads(body) if body else None))
        return await self.inner.send(url, headers, body, connect_timeout=connect_timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


def sdk(client: httpx.AsyncClient, key: str = DEMO_KEY) -> openai.AsyncOpenAI:
    """The official SDK, pointed at the in-process gateway, with its own retries off."""
    # openai types http_client as an httpx2 client; it takes an httpx one (this ASGI transport) all the same
    return openai.AsyncOpenAI(
        api_key=key,
        base_url="http://gateway/v1",
        http_client=client,  # type: ignore[arg-type]
        max_retries=0,
    )
