"""Trace export and sampling: OTLP/HTTP when an endpoint is configured (a real export to a local collector
stand-in), head sampling at the configured ratio, a client's sampling decision respected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.observability.tracing import UPSTREAM_HEADERS

from .conftest import make_settings
from .helpers import FakeRouter, kit, make_call, pipeline


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_otlp_exporter_sends_the_span_tree_when_configured(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    endpoint, received = collector
    from gateway.clock import FakeClock
    from gateway.observability.telemetry import Telemetry
    from gateway.rng import Rng

    clock = FakeClock()
    settings = make_settings(observability={"otlp_endpoint": endpoint, "service_name": "fl-test"})
    t = Telemetry.from_settings(settings, clock=clock, rng=Rng(1), environ={})
    k = type("K", (), {"telemetry": t, "clock": clock})()
    call = make_call(clock)
    call.attributes["clock"] = clock
    await pipeline(k, FakeRouter(k))(call)
    await t.stop()  # shutdown flushes the batch processor: the export happens here
    assert [(p, c) for p, c, _ in received] == [("/v1/traces", "application/x-protobuf")]
    req = ExportTraceServiceRequest()
    req.ParseFromString(received[0][2])
    (resource,) = req.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    assert service == "fl-test"
    names = sorted(s.name for scope in resource.scope_spans for s in scope.spans)
    assert names == sorted(["POST /v1/chat/completions", "auth", "route", "chat gpt-4o-mini", "chat llama-3-8b"])


async def test_sample_ratio_zero_records_nothing_but_ids_still_flow() -> None:
    k = kit(make_settings(observability={"sample_ratio": 0.0}))
    router = FakeRouter(k)
    call = make_call(k.clock)
    call.attributes["clock"] = k.clock
    await pipeline(k, router)(call)
    assert k.spans.get_finished_spans() == ()
    assert router.seen_headers["traceparent"].endswith("-00")  # not sampled: the upstream is told so
    assert (
        call.attributes[UPSTREAM_HEADERS]["traceparent"].split("-")[1]
        == f"{call.span.get_span_context().trace_id:032x}"
    )


async def test_a_sampled_client_trace_is_recorded_whatever_the_ratio() -> None:
    k = kit(make_settings(observability={"sample_ratio": 0.0}))
    call = make_call(k.clock, headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    call.attributes["clock"] = k.clock
    await pipeline(k, FakeRouter(k))(call)
    assert "POST /v1/chat/completions" in {s.name for s in k.spans.get_finished_spans()}


async def test_sample_ratio_keeps_about_that_share_of_root_traces() -> None:
    k = kit(make_settings(observability={"sample_ratio": 0.25}))
    n = 400
    for i in range(n):
        call = make_call(k.clock, rid=f"req_{i}")
        call.attributes["clock"] = k.clock
        await pipeline(k, FakeRouter(k))(call)
    roots = [s for s in k.spans.get_finished_spans() if s.name == "POST /v1/chat/completions"]
    assert 0.15 * n < len(roots) < 0.35 * n  # ids are seeded: the same share on every run
    sampled = {s.context.trace_id for s in roots}
    # every span of a sampled trace is kept, none of an unsampled one
    assert {s.context.trace_id for s in k.spans.get_finished_spans()} == sampled
    assert len(k.spans.get_finished_spans()) == 5 * len(roots)


def test_without_an_exporter_client_context_is_kept_and_bad_headers_ignored() -> None:
    from gateway.clock import FakeClock
    from gateway.observability.tracing import Tracing, trace_ids
    from gateway.rng import Rng

    tracing = Tracing(clock=FakeClock(), rng=Rng(1))  # no processor: nothing is recorded
    client = "0af7651916cd43dd8448eb211c80319c"
    kept = tracing.start_request("POST", "/v1/chat/completions", {"traceparent": f"00-{client}-b7ad6b7169203331-01"})
    assert not kept.is_recording()
    assert trace_ids(kept)[0] == client
    assert tracing.traceparent(kept)["traceparent"] == f"00-{client}-{trace_ids(kept)[1]}-01"
    fresh = tracing.start_request("POST", "/v1/chat/completions", {"traceparent": "garbage"})
    assert trace_ids(fresh)[0] not in (None, client)
    assert tracing.traceparent(fresh)["traceparent"].endswith("-00")
    for span in (kept, fresh):  # the ids and header made once agree with the span's context
        ctx = span.get_span_context()
        assert trace_ids(span) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
        assert tracing.traceparent(span) == {
            "traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        }
    assert tracing.start_child(fresh, "auth") is fresh  # no child spans are made


def test_an_unrecorded_span_made_with_its_header_is_the_span_made_from_its_context() -> None:
    """The header formatted from the ids at hand is the one formatted from the context (leading zeros, a client's
    flags), the context is what the keyword constructor made, and ``trace_id`` is ``trace_ids``' first."""
    from opentelemetry.trace import SpanContext, TraceFlags

    from gateway.clock import FakeClock
    from gateway.observability.tracing import Tracing, _Unrecorded, trace_id, trace_ids
    from gateway.rng import Rng

    tracing = Tracing(clock=FakeClock(), rng=Rng(3))
    client = {"traceparent": "00-000000000000000000000000000000ab-00000000000000cd-01"}
    made = [tracing.start_request("POST", "/v1/chat/completions", {}) for _ in range(300)]
    made.append(tracing.start_request("POST", "/v1/chat/completions", client))
    spans = [s for s in made if isinstance(s, _Unrecorded)]
    assert len(spans) == len(made)
    for span in spans:
        ctx = span.get_span_context()
        again = SpanContext(ctx.trace_id, ctx.span_id, is_remote=False, trace_flags=TraceFlags(ctx.trace_flags))
        assert (ctx, type(ctx.trace_flags)) == (again, TraceFlags)
        assert (
            span.header
            == _Unrecorded(again).header
            == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        )
        assert trace_id(span) == trace_ids(span)[0]
    assert spans[-1].header.startswith("00-000000000000000000000000000000ab-") and spans[-1].header.endswith("-01")
    assert any(s.header[3] == "0" for s in spans[:-1])  # leading zeros kept
    assert trace_id(None) is None


def test_propagate_adds_what_traceparent_gives() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gateway.clock import FakeClock
    from gateway.observability.tracing import Tracing
    from gateway.rng import Rng

    quiet, recording = Tracing(clock=FakeClock(), rng=Rng(1)), Tracing(clock=FakeClock(), rng=Rng(1))
    recording.add_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    client = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    for tracing in (quiet, recording):
        for given in ({}, client, {"traceparent": "garbage"}):
            span = tracing.start_request("POST", "/v1/chat/completions", given)
            added, updated = {"traceparent": "old", "x": "y"}, {"traceparent": "old", "x": "y"}
            tracing.propagate(span, added)
            updated.update(tracing.traceparent(span))
            assert added == updated and added["traceparent"] != "old"
