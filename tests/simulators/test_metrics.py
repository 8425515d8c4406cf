"""``GET /metrics`` of the vLLM flavour: vLLM's names, a valid exposition, values that follow the traffic."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.clock import LoopClock, run_virtual
from simulators import create_app
from tests.simulators.conftest import SimFactory

PROFILE = {
    "model": "llama",
    "latency": {"time-to-first-token": 100, "inter-token-latency": 10},
    "capacity": {"max-num-seqs": 2, "max-waiting-queue-length": 5},
    "output": {"output-tokens": 11},
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape_during_and_after(n: int) -> tuple[str, str, list[int]]:
    async def main() -> tuple[str, str, list[int]]:
        app = create_app("vllm", PROFILE, seed=1, clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            body = {"model": "llama", "messages": [{"role": "user", "content": "x" * 20}], "max_tokens": 20}
            tasks = [asyncio.ensure_future(c.post("/v1/chat/completions", json=body)) for _ in range(n)]
            await asyncio.sleep(0.05)  # virtual: every request has arrived, two are in prefill
            during = (await c.get("/metrics")).text
            codes = [r.status_code for r in await asyncio.gather(*tasks)]
            after = (await c.get("/metrics")).text
        return during, after, codes

    return run_virtual(main())


def test_gauges_show_the_batch_and_the_queue() -> None:
    during, _, codes = scrape_during_and_after(8)
    assert sorted(codes) == [200] * 7 + [429]  # 2 running + 5 waiting, the eighth refused
    s = samples(during)
    m = (("model_name", "llama"),)
    assert s[("vllm:num_requests_running", m)] == 2
    assert s[("vllm:num_requests_waiting", m)] == 5
    assert s[("vllm:kv_cache_usage_perc", m)] == 1.0


def test_counters_and_histograms_follow_the_served_requests() -> None:
    _, after, _ = scrape_during_and_after(8)
    s = samples(after)
    m = (("model_name", "llama"),)
    prompt = 3 + 3 + 5  # per request
    assert s[("vllm:prompt_tokens_total", m)] == 7 * prompt
    assert s[("vllm:generation_tokens_total", m)] == 7 * 11
    assert s[("vllm:request_success_total", (("finished_reason", "stop"), *m))] == 7
    assert s[("vllm:request_success_total", (("finished_reason", "length"), *m))] == 0
    assert s[("vllm:num_requests_running", m)] == 0 and s[("vllm:num_requests_waiting", m)] == 0
    for h in ("time_to_first_token", "e2e_request_latency", "request_queue_time", "request_prefill_time"):
        assert s[(f"vllm:{h}_seconds_count", m)] == 7, h
    assert s[("vllm:inter_token_latency_seconds_count", m)] == 7 * 10
    # two at a time, 0.2 s each: queue waits 0, 0, .2, .2, .4, .4, .6
    assert round(s[("vllm:request_queue_time_seconds_sum", m)], 6) == 1.8
    assert round(s[("vllm:time_to_first_token_seconds_sum", m)], 6) == round(1.8 + 7 * 0.1, 6)
    assert round(s[("vllm:inter_token_latency_seconds_sum", m)], 6) == 0.7
    assert s[("vllm:time_to_first_token_seconds_bucket", (("le", "0.1"), *m))] == 2
    assert s[("vllm:time_to_first_token_seconds_bucket", (("le", "+Inf"), *m))] == 7


def test_exposition_declares_each_family_once_with_its_type() -> None:
    _, after, _ = scrape_during_and_after(1)
    types = {f.name: f.type for f in text_string_to_metric_families(after)}
    assert types["vllm:num_requests_running"] == "gauge"
    assert types["vllm:kv_cache_usage_perc"] == "gauge"
    assert types["vllm:prompt_tokens"] == "counter"
    assert types["vllm:request_success"] == "counter"
    assert types["vllm:e2e_request_latency_seconds"] == "histogram"
    assert after.count("# TYPE ") == len(types)


async def test_openai_flavour_has_no_metrics_route(make_sim: SimFactory) -> None:
    assert (await make_sim("openai").http.get("/metrics")).status_code == 404
