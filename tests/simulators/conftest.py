"""Simulators in process: the ASGI app behind ``httpx.ASGITransport``, and the official SDK on top of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest

from simulators import SimulatorApp, create_app
from simulators.failures import Flavour

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]


class Sim:
    """One simulator with a raw httpx client and the official SDK (its retries off)."""

    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self.engine = app.engine
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")
        # openai types http_client as an httpx2 client; it takes an httpx one (this ASGI transport) all the same
        self.sdk = openai.AsyncOpenAI(
            api_key="sk-test",
            base_url="http://sim/v1",
            http_client=self.http,  # type: ignore[arg-type]
            max_retries=0,
        )

    async def chat(self, **body: Any) -> httpx.Response:
        payload = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
        return await self.http.post("/v1/chat/completions", json=payload)

    @staticmethod
    def events(resp: httpx.Response) -> list[str]:
        """The ``data:`` payloads of an SSE body, in order."""
        return [b[len("data: ") :] for b in resp.text.split("\n\n") if b.startswith("data: ")]

    async def aclose(self) -> None:
        await self.http.aclose()


SimFactory = Callable[..., Sim]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    sims: list[Sim] = []

    def build(flavour: Flavour = "openai", profile: Any = "instant", seed: int = 0, **kw: Any) -> Sim:
        sim = Sim(create_app(flavour, profile, seed, **kw))
        sims.append(sim)
        return sim

    yield build
    for s in sims:
        await s.aclose()
