"""The whole gateway (create_app) in front of an echoing upstream: no prompt or answer text in any log line, metric,
span or request-log record unless the debug option is on; W3C trace context from the client to the upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import hash_key
from gateway.observability.requestlog import read_records

from .conftest import KEY, Gateway
from .helpers import attrs, parent_id

MARKER = "zq-private-7f3a9c1e-marker"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def _stop(gw: Gateway) -> None:
    await gw.stop()


def _body(stream: bool) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "system", "content": f"system {MARKER}"}, {"role": "user", "content": MARKER}],
    }


def _span_text(spans: InMemorySpanExporter) -> str:
    out = []
    for s in spans.get_finished_spans():
        out.append(s.name)
        out.append(repr(dict(s.attributes or {})))
        out.extend(repr(e.attributes) for e in s.events)
    return "\n".join(out)


async def test_prompt_and_answer_text_appear_in_no_log_metric_span_or_record(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway()
    plain = await gw.client.post("/v1/chat/completions", json=_body(False), headers=KEY)
    assert plain.status_code == 200
    assert MARKER in plain.json()["choices"][0]["message"]["content"]  # the text did go through, both ways
    async with gw.client.stream("POST", "/v1/chat/completions", json=_body(True), headers=KEY) as streamed:
        assert streamed.status_code == 200
        text = (await streamed.aread()).decode()
    assert MARKER in text and text.endswith("data: [DONE]\n\n")
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    await _stop(gw)

    lines = [orjson.loads(x) for x in gw.log.getvalue().splitlines()]
    requests = [x for x in lines if x["event"] == "request"]
    assert [(x["status"], x["stream"]) for x in requests] == [(200, False), (200, True)]
    records = list(read_records(gw.request_log))
    assert [(r["status"], r["stream"], r["tokens_out"]) for r in records] == [(200, False, 5), (200, True, 5)]
    assert 'faultline_requests_total{consumer="alice",model="gpt-4o-mini"' in scrape
    assert len(gw.spans.get_finished_spans()) >= 2 * 3  # request, auth, quota, route, attempt per request

    assert MARKER not in gw.log.getvalue()
    assert MARKER not in scrape
    assert MARKER not in gw.request_log.read_text()
    assert MARKER not in _span_text(gw.spans)


async def test_the_debug_option_puts_the_payload_in_the_request_line(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway(log_payloads=True)
    assert (await gw.client.post("/v1/chat/completions", json=_body(False), headers=KEY)).status_code == 200
    await _stop(gw)
    (line,) = [orjson.loads(x) for x in gw.log.getvalue().splitlines() if '"event":"request"' in x]
    assert line["payload"]["messages"][1]["content"] == MARKER
    assert MARKER not in gw.request_log.read_text()  # the request log never holds text


@pytest.mark.parametrize("stream", [False, True])
async def test_client_traceparent_is_the_parent_and_the_route_span_reaches_the_upstream(
    gateway: Callable[..., Any], stream: bool
) -> None:
    gw: Gateway = await gateway()
    headers = {**KEY, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    r = await gw.client.post("/v1/chat/completions", json=_body(stream), headers=headers)
    assert r.status_code == 200
    await _stop(gw)
    spans = {s.name: s for s in gw.spans.get_finished_spans()}
    assert {"POST /v1/chat/completions", "auth", "quota", "route", "chat gpt-4o-mini"} <= set(spans)
    root = spans["POST /v1/chat/completions"]
    assert f"{root.context.trace_id:032x}" == CLIENT_TRACE
    assert root.parent is not None and f"{parent_id(root):016x}" == CLIENT_SPAN
    for child in ("auth", "quota", "route"):
        assert parent_id(spans[child]) == root.context.span_id
    route = spans["route"]
    assert parent_id(spans["chat gpt-4o-mini"]) == route.context.span_id
    (sent,) = gw.upstream.headers
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{route.context.span_id:016x}-01"
    (line,) = [orjson.loads(x) for x in gw.log.getvalue().splitlines() if '"event":"request"' in x]
    assert line["trace_id"] == CLIENT_TRACE
    assert attrs(root)["gen_ai.usage.input_tokens"] == 7
    assert attrs(root)["gen_ai.usage.output_tokens"] == 5
    assert attrs(root)["gen_ai.provider.name"] == "openai"


async def test_without_a_client_traceparent_the_gateway_starts_the_trace(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway()
    assert (await gw.client.post("/v1/chat/completions", json=_body(False), headers=KEY)).status_code == 200
    await _stop(gw)
    root = next(s for s in gw.spans.get_finished_spans() if s.name == "POST /v1/chat/completions")
    assert root.parent is None
    (sent,) = gw.upstream.headers
    assert sent["traceparent"].startswith(f"00-{root.context.trace_id:032x}-")


async def test_remaining_daily_budget_per_consumer(gateway: Callable[..., Any]) -> None:
    alice = {"name": "alice", "key_sha256": hash_key("sk-alice"), "limits": {"tpd": 1000}}
    gw: Gateway = await gateway(consumers=[alice])
    for stream in (False, True):
        assert (await gw.client.post("/v1/chat/completions", json=_body(stream), headers=KEY)).status_code == 200
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    # the echo upstream reports 7 + 5 tokens per answer: two answers charged against the day
    assert 'faultline_consumer_budget_remaining_tokens{consumer="alice"} 976.0' in scrape


@pytest.mark.parametrize("stream", [False, True])
async def test_guardrail_span_when_the_answer_is_redacted(gateway: Callable[..., Any], stream: bool) -> None:
    gw: Gateway = await gateway(router={"guardrails": {"banned_words": [MARKER], "banned_action": "redact"}})
    r = await gw.client.post("/v1/chat/completions", json=_body(stream), headers=KEY)
    assert r.status_code == 200 and MARKER not in r.text
    await _stop(gw)
    spans = {s.name: s for s in gw.spans.get_finished_spans()}
    guard, root = spans["guardrail"], spans["POST /v1/chat/completions"]
    assert parent_id(guard) == root.context.span_id
    assert attrs(guard)["faultline.guardrail.stage"] == "output"
    (action,) = attrs(guard)["faultline.guardrail.actions"]
    rule, _, what = action.rpartition(".")
    assert what == "redact"
    key = f'faultline_guardrail_actions_total{{action="redact",guardrail="{rule}"}} 1.0'
    assert key in gw.runtime.telemetry.metrics.exposition().decode()


async def test_guardrail_span_when_the_input_check_refuses(gateway: Callable[..., Any]) -> None:
    rails = {"banned_words": [MARKER], "check_input": True}
    gw: Gateway = await gateway(router={"guardrails": rails})
    r = await gw.client.post("/v1/chat/completions", json=_body(False), headers=KEY)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "content_filter")
    await _stop(gw)
    assert gw.upstream.headers == []
    spans = {s.name: s for s in gw.spans.get_finished_spans()}
    guard = spans["guardrail"]
    assert parent_id(guard) == spans["POST /v1/chat/completions"].context.span_id
    assert attrs(guard)["faultline.guardrail.stage"] == "input"
    assert attrs(guard)["error.type"] == "content_filter"
    (record,) = read_records(gw.request_log)
    assert (record["status"], record["error_type"]) == (400, "content_filter")


async def test_no_guardrail_span_when_no_guardrail_acted(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway(router={"guardrails": {"banned_words": ["never-said"], "check_input": True}})
    assert (await gw.client.post("/v1/chat/completions", json=_body(False), headers=KEY)).status_code == 200
    await _stop(gw)
    assert "guardrail" not in {s.name for s in gw.spans.get_finished_spans()}


async def test_an_invalid_client_traceparent_is_ignored(gateway: Callable[..., Any]) -> None:
    gw: Gateway = await gateway()
    for bad in ("garbage", f"00-{'0' * 32}-{CLIENT_SPAN}-01", f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"):
        headers = {**KEY, "traceparent": bad}
        assert (await gw.client.post("/v1/chat/completions", json=_body(False), headers=headers)).status_code == 200
    await gw.stop()
    roots = [s for s in gw.spans.get_finished_spans() if s.name == "POST /v1/chat/completions"]
    assert len(roots) == 3 and all(s.parent is None for s in roots)
    assert len({s.context.trace_id for s in roots}) == 3
    assert all(not h["traceparent"].startswith(f"00-{'0' * 32}") for h in gw.upstream.headers)
