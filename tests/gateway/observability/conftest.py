"""Shared pieces for observability tests: a minimal valid configuration, the promtool binary, and a whole
gateway (create_app) in front of an echoing upstream with its logs, spans and request log captured."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import Settings, hash_key, parse_settings
from gateway.rng import Rng
from gateway.runtime import Runtime
from gateway.transport import AsgiTransport
from tests.tools import tool

from .echo import EchoUpstream

KEY = {"authorization": "Bearer sk-alice"}


def make_settings(**overrides: object) -> Settings:
    raw: dict[str, object] = {
        "seed": 7,
        "server": {"metrics_port": 0},
        "consumers": [{"name": "alice", "key_sha256": hash_key("sk-alice")}],
        "providers": [
            {"name": "openai-sim", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm-sim", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
        ],
        "models": [
            {
                "name": "gpt-4o-mini",
                "routes": [{"provider": "openai-sim", "model": "gpt-4o-mini"}],
                "aliases": ["mini"],
            }
        ],
    }
    raw.update(overrides)
    return parse_settings(raw)


def promtool() -> str:
    """The promtool binary. Required, never skipped: a missing promtool fails the test (``make tools`` installs it)."""
    return tool("promtool")


@dataclass
class Gateway:
    client: httpx.AsyncClient
    runtime: Runtime
    upstream: EchoUpstream
    log: io.StringIO
    spans: InMemorySpanExporter
    request_log: Path

    async def stop(self) -> None:
        """Stop telemetry now (the request log is flushed on stop); the fixture's later stop is a no-op."""
        await self.runtime.telemetry.stop()

    def lines(self) -> list[dict[str, Any]]:
        self.runtime.telemetry.logs.flush()  # the lines of the current tick, not written yet
        return [orjson.loads(x) for x in self.log.getvalue().splitlines()]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Any, httpx.AsyncClient]] = []

    async def build(
        *, consumers: Any = None, router: Any = None, models: Any = None, state: Any = None, **observability: Any
    ) -> Gateway:
        path = tmp_path / "requests.jsonl"
        given = {"consumers": consumers, "router": router, "models": models}
        extra = {k: v for k, v in given.items() if v is not None}
        settings = make_settings(observability={"request_log_path": str(path), **observability}, **extra)
        upstream = EchoUpstream()
        app = create_app(
            settings,
            clock=SystemClock(),
            rng=Rng(11),
            state=state if state is not None else fakeredis.FakeAsyncRedis(),
            upstream_transport=AsgiTransport({"http://openai.sim": upstream, "http://vllm.sim": upstream}),
        )
        rt: Runtime = app.state.runtime
        log, spans = io.StringIO(), InMemorySpanExporter()
        rt.telemetry.logs.set_stream(log)
        rt.telemetry.tracing.add_processor(SimpleSpanProcessor(spans))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        started.append((lifespan, client))
        return Gateway(client, rt, upstream, log, spans, path)

    yield build
    for lifespan, client in started:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
