"""docs/OBSERVABILITY.md stays true to the code: every metric (name, type, labels), every span attribute, every
log event and request-line field, and every request-log field the code produces is documented, and the metric
table names nothing the code does not export."""

from __future__ import annotations

import io
import re
from dataclasses import fields
from pathlib import Path

import orjson
from prometheus_client.metrics import MetricWrapperBase

from gateway.call import Call, Reply
from gateway.clock import FakeClock
from gateway.observability.logs import EventLog
from gateway.observability.metrics import Metrics
from gateway.requestrecord import AttemptRecord, RequestRecord

from .conftest import make_settings
from .helpers import FakeRouter, kit, make_call, pipeline

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "OBSERVABILITY.md").read_text()


def _metric_rows() -> dict[str, tuple[str, set[str]]]:
    section = DOC.split("### Every metric", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(faultline_[a-z_]+)` \| (\w+) \| ([^|]*) \|", line)
        if m:
            labels = set(re.findall(r"`([a-z_]+)`", m.group(3)))
            rows[m.group(1)] = (m.group(2), labels)
    return rows


def _code_metrics() -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    metrics = Metrics()
    for value in [*vars(metrics).values(), *vars(metrics.reloads).values()]:
        if isinstance(value, MetricWrapperBase):
            kind = value._type
            assert kind is not None
            name = value._name + ("_total" if kind == "counter" else "")
            out[name] = (kind, set(value._labelnames))
    return out


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    assert _metric_rows() == _code_metrics()


async def test_every_span_attribute_is_documented() -> None:
    k = kit(make_settings())
    router = FakeRouter(k)

    async def with_guardrail(call: Call) -> Reply:
        reply = await router(call)
        call.record.decisions["guardrail"] = ["banned_words.redact"]
        return reply

    call = make_call(k.clock)
    call.attributes["clock"] = k.clock
    await pipeline(k, with_guardrail)(call)  # type: ignore[arg-type]  # a plain handler in FakeRouter's place
    spans = k.spans.get_finished_spans()
    assert {s.name for s in spans} >= {"POST /v1/chat/completions", "auth", "route", "guardrail"}
    keys = {key for s in spans for key in (s.attributes or {})}
    assert keys >= {"gen_ai.operation.name", "gen_ai.request.model", "gen_ai.provider.name", "error.type"}
    missing = sorted(key for key in keys if f"`{key}`" not in DOC)
    assert missing == []


def test_every_log_event_and_request_field_is_documented() -> None:
    events = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        events |= set(re.findall(r'\.event\(\s*"([a-z_]+)"', path.read_text()))
    assert {"breaker_transition", "state_store_failure", "config_error"} <= events
    assert sorted(e for e in events if f"| `{e}` |" not in DOC) == []

    buf = io.StringIO()
    log = EventLog(FakeClock(), stream=buf, log_payloads=True)
    log.request(RequestRecord("r", 0.0, run_id="x"), trace_id="t", latency_s=0.0, ttft_s=0.0, payload={})
    line = orjson.loads(buf.getvalue())
    request_section = DOC.split("**The `request` line**", 1)[1].split("**Event lines:**", 1)[0]
    assert sorted(f for f in line if f not in ("ts", "level", "event") and f"`{f}`" not in request_section) == []


def test_every_request_log_field_is_documented() -> None:
    schema = DOC.split("### Schema, version 1", 1)[1].split("\n## ", 1)[0]
    record = {f.name for f in fields(RequestRecord)} | {"schema"}
    assert set(RequestRecord("r", 0.0).to_dict()) == record
    assert sorted(f for f in record if f"`{f}`" not in schema) == []
    attempts_row = next(x for x in schema.splitlines() if x.startswith("| `attempts` |"))
    assert sorted(f.name for f in fields(AttemptRecord) if f"`{f.name}`" not in attempts_row) == []
