"""What the router reads once instead of per request (its groups' routes and keys, chaos's switch) gives the same
decisions as reading it each time: a group that is not one of the router's own objects, a switched chaos."""

from __future__ import annotations

import random
from typing import Any

from gateway.call import Call
from gateway.clock import run_virtual
from gateway.router.breaker import State
from gateway.router.chaos import Chaos
from gateway.settings.router import ChaosSettings

from .conftest import make_call, runtime, send, settings

PRIMARY_FALLBACK = [  # openai first, vllm the fallback (weight 0): no draw decides the order
    {"provider": "openai", "model": "gpt-4o-mini", "weight": 1},
    {"provider": "vllm", "model": "llama", "weight": 0},
]


def _records(copy_group: bool, open_openai: bool, model: str = "chat") -> list[Any]:
    async def main() -> list[Any]:
        solo = {"name": "solo", "routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}
        rt, _ = runtime(settings(models=[{"name": "chat", "routes": PRIMARY_FALLBACK}, solo]))
        if open_openai:  # the primary's breaker open: skipped, the fallback answers
            breaker = rt.router.breakers.get("openai/gpt-4o-mini")
            breaker.state, breaker.open_until = State.OPEN, rt.clock.now() + 60.0
        out = []
        for i in range(3):
            call: Call = make_call(rt, n=i, model=model)
            if copy_group:  # an equal group, but not the object the router planned for
                assert call.group is not None
                call.group = call.group.model_copy(deep=True)
            await send(rt, call)
            rec = call.record
            out.append((rec.provider, rec.decisions, rec.breaker_states, [a.provider for a in rec.attempts]))
        return out

    return run_virtual(main())


def test_a_group_the_router_did_not_plan_for_is_routed_the_same() -> None:
    assert _records(True, False) == _records(False, False)
    assert _records(False, False)[0][0] == "openai"


def test_a_one_route_group_the_router_did_not_plan_for_is_routed_the_same() -> None:
    planned = _records(False, False, "solo")
    assert planned == _records(True, False, "solo")
    assert planned[0][1]["route"] == {"group": "solo", "strategy": "weighted", "order": ["openai"]}


def test_an_open_breaker_is_skipped_the_same_for_a_group_the_router_did_not_plan_for() -> None:
    planned = _records(False, True)
    assert planned == _records(True, True)
    provider, decisions, states, _ = planned[0]
    assert provider == "vllm"
    assert decisions["skipped"] == {"openai": "breaker_open"}
    assert states == {"openai/gpt-4o-mini": "open", "vllm/llama": "closed"}


def test_chaos_switch_follows_its_settings() -> None:
    chaos = Chaos(ChaosSettings(), random.Random(1))
    assert chaos.enabled is False
    chaos.update(ChaosSettings(enabled=True))
    assert chaos.settings.enabled
    assert chaos.enabled
