"""Helpers for router tests: a runtime in front of in-process simulators, on the virtual-time loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import fakeredis

from gateway.call import Call
from gateway.clock import LoopClock
from gateway.config import Consumer, Settings, hash_key, parse_settings
from gateway.requestlog import RequestRecord
from gateway.rng import Rng
from gateway.runtime import Runtime, build_runtime
from gateway.schemas import ChatRequest
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator

ADMIN_KEY = "fl-test-admin"
PIN_KEY = "fl-test-pinner"
LOW_KEY = "fl-test-low"


def settings(router: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "seed": 11,
        "admin_key_sha256": hash_key(ADMIN_KEY),
        "consumers": [
            {"name": "sre", "key_sha256": hash_key(PIN_KEY), "permissions": ["chat", "pin"], "priority": 5},
            {"name": "batch", "key_sha256": hash_key(LOW_KEY), "priority": 0},
        ],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
        ],
        "models": [
            {
                "name": "chat",
                "routes": [
                    {"provider": "openai", "model": "gpt-4o-mini", "weight": 1},
                    {"provider": "vllm", "model": "llama", "weight": 1},
                ],
            },
            {"name": "solo", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]},
        ],
        "router": dict(router or {}),
    }
    raw.update(overrides)
    return parse_settings(raw)


class CountingTransport(AsgiTransport):
    """Counts upstream calls per host."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        super().__init__(apps)
        self.calls: Counter[str] = Counter()

    async def send(self, url: str, *args: Any, **kwargs: Any) -> Any:
        self.calls[url.split("/")[2]] += 1
        return await super().send(url, *args, **kwargs)


def profile(*phases: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"base": "instant", "timeline": list(phases), **extra}


def runtime(
    s: Settings, *, openai: Any = "instant", vllm: Any = "instant", state: Any = None
) -> tuple[Runtime, CountingTransport]:
    """Must be called on the running (virtual-time) loop."""
    clock = LoopClock()
    transport = CountingTransport(
        {
            "http://openai.sim": create_simulator(flavour="openai", profile=openai, seed=1, name="openai", clock=clock),
            "http://vllm.sim": create_simulator(flavour="vllm", profile=vllm, seed=1, name="vllm", clock=clock),
        }
    )
    rt = build_runtime(s, clock=clock, rng=Rng(s.seed), state=state or fakeredis.FakeAsyncRedis(), transport=transport)
    return rt, transport


def make_call(
    rt: Runtime,
    *,
    model: str = "chat",
    stream: bool = False,
    consumer: Consumer | None = None,
    headers: Mapping[str, str] | None = None,
    n: int = 0,
) -> Call:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        payload["stream"] = True
    now = rt.clock.monotonic()

    async def no_body() -> bytes:
        return b""

    return Call(
        request_id=f"req-{n}",
        method="POST",
        path="/v1/chat/completions",
        headers=dict(headers or {}),
        receive_body=no_body,
        record=RequestRecord(request_id=f"req-{n}", ts_arrival=rt.clock.now()),
        started=now,
        deadline=now + rt.settings.router.timeouts.request_deadline_s,
        consumer=consumer,
        body=ChatRequest.model_validate(payload),
        payload=payload,
    )
