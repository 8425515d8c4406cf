"""Resilience metrics, spans, log events and request-log entries on the whole gateway: a chaos fault injected on
the first provider, a failover to the second."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.observability.requestlog import read_records

from .conftest import KEY, Gateway
from .helpers import attrs

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
# openai-sim first (vllm-sim has weight 0: always last), and every attempt on openai-sim gets an injected 503
MODELS = [
    {
        "name": "gpt-4o-mini",
        "routes": [
            {"provider": "openai-sim", "model": "gpt-4o-mini", "weight": 1},
            {"provider": "vllm-sim", "model": "llama-3-8b", "weight": 0},
        ],
    }
]
CHAOS = {"chaos": {"enabled": True, "rules": [{"fault": "error", "percent": 100, "provider": "openai-sim"}]}}


async def test_chaos_fault_then_failover_is_counted_traced_logged_and_recorded(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway(models=MODELS, router=CHAOS)
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=KEY)
    assert r.status_code == 200
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    await gw.stop()

    (rec,) = read_records(gw.request_log)
    first, second = rec["attempts"]
    assert (first["provider"], first["injected"], second["provider"], second["outcome"]) == (
        "openai-sim",
        True,
        "vllm-sim",
        "ok",
    )
    assert rec["retries"] == 1 and rec["provider"] == "vllm-sim"
    assert [(c["provider"], c["fault"]) for c in rec["decisions"]["chaos"]] == [("openai-sim", "error")]

    assert 'faultline_chaos_injections_total{fault="error",provider="openai-sim"} 1.0' in scrape
    failed = f'faultline_upstream_attempts_total{{outcome="{first["outcome"]}",provider="openai-sim"}} 1.0'
    assert failed in scrape
    assert 'faultline_upstream_attempts_total{outcome="ok",provider="vllm-sim"} 1.0' in scrape
    assert 'faultline_fallbacks_total{from_provider="openai-sim",to_provider="vllm-sim"} 1.0' in scrape
    assert 'faultline_retries_total{model="gpt-4o-mini"} 1.0' in scrape

    spans = {s.name: s for s in gw.spans.get_finished_spans()}
    injected, answered = spans["chat gpt-4o-mini"], spans["chat llama-3-8b"]
    assert attrs(injected)["faultline.chaos.injected"] is True
    assert attrs(injected)["error.type"] == first["outcome"]
    assert (attrs(injected)["faultline.attempt"], attrs(answered)["faultline.attempt"]) == (0, 1)
    assert attrs(answered)["gen_ai.provider.name"] == "vllm"
    assert attrs(spans["POST /v1/chat/completions"])["faultline.retries"] == 1

    events = [x for x in gw.lines() if x["event"] == "chaos_injected"]
    assert [(e["fault"], e["provider"]) for e in events] == [("error", "openai-sim")]
    (line,) = [x for x in gw.lines() if x["event"] == "request"]
    assert (line["attempts"], line["retries"], line["provider"]) == (2, 1, "vllm-sim")


async def test_breaker_opening_is_logged_gauged_and_skips_the_provider(gateway: Callable[..., Any]) -> None:
    breaker = {"consecutive_failures": 2, "min_calls": 100, "cooloff_s": 600}
    gw: Gateway = await gateway(models=MODELS, router={**CHAOS, "breaker": breaker})
    for _ in range(3):
        assert (await gw.client.post("/v1/chat/completions", json=BODY, headers=KEY)).status_code == 200
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    await gw.stop()

    (opened,) = [x for x in gw.lines() if x["event"] == "breaker_transition"]
    assert (opened["level"], opened["provider"], opened["from_state"], opened["to_state"]) == (
        "warning",
        "openai-sim",
        "closed",
        "open",
    )
    assert 'faultline_breaker_state{provider="openai-sim",state="open"} 1.0' in scrape
    assert 'faultline_breaker_state{provider="openai-sim",state="closed"} 0.0' in scrape
    key = 'faultline_breaker_transitions_total{from_state="closed",provider="openai-sim",to_state="open"} 1.0'
    assert key in scrape
    third = list(read_records(gw.request_log))[2]
    assert [a["provider"] for a in third["attempts"]] == ["vllm-sim"]
    assert third["decisions"]["skipped"] == {"openai-sim": "breaker_open"}
    assert third["breaker_states"]["openai-sim/gpt-4o-mini"] == "open"
    assert 'faultline_chaos_injections_total{fault="error",provider="openai-sim"} 2.0' in scrape
