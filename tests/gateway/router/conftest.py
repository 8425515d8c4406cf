"""Helpers for router tests: a runtime in front of in-process simulators, on the virtual-time loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import fakeredis
import orjson

from gateway.call import Call, Reply
from gateway.clock import LoopClock
from gateway.config import Consumer, Settings, hash_key, parse_settings
from gateway.errors import GatewayError
from gateway.observability.events import NullEvents
from gateway.rng import Rng
from gateway.router.orchestrator import Router
from gateway.runtime import Runtime, build_runtime
from gateway.schemas import ChatRequest
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator
from tests.calls import build_call

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
    s: Settings, *, openai: Any = "instant", vllm: Any = "instant", state: Any = None, events: Any = None
) -> tuple[Runtime, CountingTransport]:
    """Must be called on the running (virtual-time) loop. ``events``: a RouterEvents to record what is reported."""
    clock = LoopClock()
    transport = CountingTransport(
        {
            "http://openai.sim": create_simulator(flavour="openai", profile=openai, seed=1, name="openai", clock=clock),
            "http://vllm.sim": create_simulator(flavour="vllm", profile=vllm, seed=1, name="vllm", clock=clock),
        }
    )
    state = state or fakeredis.FakeAsyncRedis()
    rt = build_runtime(s, clock=clock, rng=Rng(s.seed), state=state, transport=transport)
    if events is not None:
        rt.router = Router(
            s, rt.catalog, rt.adapters, clock, Rng(s.seed).child("router"), store=rt.store, events=events
        )
    return rt, transport


class RecordingEvents(NullEvents):
    """Every router event reported, in order, as (name, *args)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def breaker_transition(self, provider: str, old: str, new: str, reason: str) -> None:
        self.seen.append(("breaker_transition", provider, old, new))
        self.seen.append(("breaker_reason", provider, new, reason))

    def slow_call(self, provider: str) -> None:
        self.seen.append(("slow_call", provider))

    def hedge_sent(self, provider: str) -> None:
        self.seen.append(("hedge_sent", provider))

    def hedge_won(self, provider: str) -> None:
        self.seen.append(("hedge_won", provider))

    def retry_budget_exhausted(self, provider: str) -> None:
        self.seen.append(("retry_budget_exhausted", provider))

    def state_store_failure(self, operation: str, error: str) -> None:
        self.seen.append(("state_store_failure", operation, error))

    def shed(self, reason: str) -> None:
        self.seen.append(("shed", reason))

    def queue_depth(self, depth: int) -> None:
        self.seen.append(("queue_depth", depth))

    def chaos_injected(self, fault: str, provider: str) -> None:
        self.seen.append(("chaos_injected", fault, provider))

    def guardrail_action(self, guardrail: str, action: str) -> None:
        self.seen.append(("guardrail_action", guardrail, action))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.seen if e[0] == name]


async def send(rt: Runtime, call: Call) -> tuple[Reply | GatewayError, bytes]:
    """The router's answer (or the error it raised) and the whole body, stream included; as the edge does, the
    work deferred until the reply is out runs once it is read."""
    try:
        reply = await rt.router(call)
    except GatewayError as exc:
        return exc, b""
    if reply.stream is None:
        await call.finish()
        return reply, reply.body or b""
    return reply, b"".join([part async for part in reply.stream])


def sse_events(body: bytes) -> list[Any]:
    """The JSON events of an SSE body (``[DONE]`` left out)."""
    return [orjson.loads(e.removeprefix(b"data: ")) for e in body.split(b"\n\n") if e and e != b"data: [DONE]"]


def make_call(
    rt: Runtime,
    *,
    model: str = "chat",
    stream: bool = False,
    consumer: Consumer | None = None,
    headers: Mapping[str, str] | None = None,
    n: int = 0,
    content: str = "hello",
) -> Call:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        payload["stream"] = True
    return build_call(
        request_id=f"req-{n}",
        headers=headers,
        arrival=rt.clock.now(),
        started=rt.clock.monotonic(),
        deadline_s=rt.settings.router.timeouts.request_deadline_s,
        consumer=consumer,
        body=ChatRequest.model_validate(payload),
        group=rt.catalog.resolve(model),
        payload=payload,
    )
