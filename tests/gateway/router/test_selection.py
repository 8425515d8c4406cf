from __future__ import annotations

from collections import Counter

import pytest

from gateway.config import Consumer, ModelGroup, Price, Route, hash_key
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.rng import Rng
from gateway.router.selection import (
    LatencyEwma,
    order_scored,
    order_weighted,
    pinned_provider,
    resolve_group,
    scores,
)
from gateway.settings.router import ScoringSettings, TaskRule

A = Route(provider="a", model="m-a", weight=3)
B = Route(provider="b", model="m-b", weight=1)
Z = Route(provider="z", model="m-z", weight=0)
GROUP = ModelGroup(name="chat", routes=[A, B, Z], aliases=["chat-alias"])
SMALL = ModelGroup(name="small", routes=[B])
PINNER = Consumer(name="sre", key_sha256=hash_key("k1"), permissions=frozenset({"chat", "pin"}))
PLAIN = Consumer(name="app", key_sha256=hash_key("k2"))


def test_weighted_order_is_seeded_and_proportional() -> None:
    rng = Rng(5)
    firsts = Counter(order_weighted(GROUP.routes, rng)[0].provider for _ in range(4000))
    assert firsts["z"] == 0
    assert 0.7 < firsts["a"] / 4000 < 0.8  # 3:1
    assert [order_weighted(GROUP.routes, Rng(9)) for _ in range(3)] == [
        order_weighted(GROUP.routes, Rng(9)) for _ in range(3)
    ]
    assert order_weighted(GROUP.routes, Rng(1))[-1] is Z  # weight 0: fallback only


def test_scored_prefers_low_latency_and_cost() -> None:
    w = ScoringSettings(latency_weight=0.6, cost_weight=0.4)
    prices = {"m-a": Price(input_per_1m=10, output_per_1m=30), "m-b": Price(input_per_1m=0.1, output_per_1m=0.2)}
    latency = {"a/m-a": 0.2, "b/m-b": 1.0}
    # a: 0.6*0 + 0.4*1 = 0.4; b: 0.6*1 + 0.4*0 = 0.6
    assert scores([A, B], latency, prices, w) == pytest.approx([0.4, 0.6])
    assert order_scored([A, B], latency, prices, w)[0] is A
    cheap = ScoringSettings(latency_weight=0.2, cost_weight=0.8)
    assert order_scored([A, B], latency, prices, cheap)[0] is B
    assert order_scored([A, B, Z], {}, {}, w) == [A, B, Z]  # no data: by weight


def test_ewma() -> None:
    e = LatencyEwma(0.5)
    e.observe("k", 1.0)
    e.observe("k", 3.0)
    assert e.values["k"] == 2.0


@pytest.mark.parametrize(
    ("model", "task", "group", "rule"),
    [
        ("chat", None, "chat", None),
        ("chat", "classify", "small", 0),
        ("chat-alias", None, "small", 1),
        ("chat-alias", "classify", "small", 0),
    ],
)
def test_task_rules(model: str, task: str | None, group: str, rule: int | None) -> None:
    rules = [TaskRule(task="classify", group="small"), TaskRule(model="chat-alias", group="small")]
    got, idx = resolve_group(model, task, rules, {"chat": GROUP, "small": SMALL}, GROUP)
    assert (got.name, idx) == (group, rule)


def test_pinning() -> None:
    names = ["x-provider-pin", "x-provider-priority"]
    known = {"a", "b", "z", "other"}
    assert pinned_provider({}, names, PLAIN, known, GROUP) is None
    assert pinned_provider({"x-provider-pin": "b"}, names, PINNER, known, GROUP) == "b"
    assert pinned_provider({"x-provider-priority": "a"}, names, PINNER, known, GROUP) == "a"
    with pytest.raises(PermissionDenied):
        pinned_provider({"x-provider-pin": "b"}, names, PLAIN, known, GROUP)
    with pytest.raises(InvalidRequest, match="Unknown provider"):
        pinned_provider({"x-provider-pin": "nope"}, names, PINNER, known, GROUP)
    with pytest.raises(InvalidRequest, match="does not serve"):
        pinned_provider({"x-provider-pin": "other"}, names, PINNER, known, GROUP)


def test_an_unmeasured_route_is_tried_before_a_measured_one() -> None:
    w = ScoringSettings()
    assert order_scored([A, B], {"a/m-a": 0.5}, {}, w) == [B, A]
    assert order_scored([A, B], {"a/m-a": 0.5, "b/m-b": 0.5}, {}, w) == [A, B]  # a tie keeps the group order
    assert scores([A, B, Z], {"a/m-a": 0.2, "b/m-b": 0.4, "z/m-z": 0.3}, {}, w) == pytest.approx([0.0, 0.6, 0.3])
