"""Build a Telemetry over FakeClock, an in-memory span exporter and a string log stream; a fake router and a
small traced pipeline around it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.call import Call, Handler, Reply
from gateway.clock import FakeClock
from gateway.config import Settings
from gateway.errors import UpstreamFailed
from gateway.observability.stage import TelemetryStage, Traced, traced_handler
from gateway.observability.telemetry import Telemetry
from gateway.observability.tracing import UPSTREAM_HEADERS
from gateway.pipeline import chain
from gateway.requestrecord import AttemptRecord
from gateway.rng import Rng
from tests.calls import build_call


@dataclass
class Kit:
    telemetry: Telemetry
    clock: FakeClock
    spans: InMemorySpanExporter
    log: io.StringIO


def kit(settings: Settings, *, request_log: Path | None = None, seed: int = 1) -> Kit:
    clock = FakeClock()
    spans = InMemorySpanExporter()
    log = io.StringIO()
    env = {"FAULTLINE_REQUEST_LOG": str(request_log), "FAULTLINE_RUN_ID": "run-1"} if request_log else {}
    t = Telemetry.from_settings(
        settings, clock=clock, rng=Rng(seed), environ=env, span_processors=[SimpleSpanProcessor(spans)], log_stream=log
    )
    return Kit(t, clock, spans, log)


def make_call(clock: FakeClock, *, headers: dict[str, str] | None = None, rid: str = "req_1") -> Call:
    return build_call(request_id=rid, headers=headers, arrival=clock.now(), started=clock.monotonic())


class FakeRouter:
    """Two attempts (a 503 then a fallback), 0.5 s and 1 s, on the fake clock; JSON or a 3-chunk stream."""

    def __init__(self, k: Kit, *, stream: bool = False, fail: bool = False, done: bool = False) -> None:
        self.k, self.stream, self.fail, self.done = k, stream, fail, done  # done: end the stream with [DONE]
        self.seen_headers: dict[str, str] = {}

    async def __call__(self, call: Call) -> Reply:
        clock, rec = self.k.clock, call.record
        self.seen_headers = dict(call.attributes.get(UPSTREAM_HEADERS, {}))
        rec.consumer, rec.model, rec.stream = "alice", "gpt-4o-mini", self.stream
        rec.attempts.append(AttemptRecord("openai-sim", "gpt-4o-mini", clock.now(), 0.5, "server_error", 503))
        clock.advance(0.5)
        if self.fail:
            raise UpstreamFailed("boom")
        rec.retries, rec.provider = 1, "vllm-sim"
        rec.attempts.append(AttemptRecord("vllm-sim", "llama-3-8b", clock.now(), 1.0, "ok", 200))
        rec.tokens_in, rec.tokens_out = 11, 3
        if not self.stream:
            clock.advance(1.0)
            return Reply(body=b'{"ok":true}')

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                clock.advance(0.25)
                yield f"data: {i}\n\n".encode()
            if self.done:
                yield b"data: [DONE]\n\n"
            clock.advance(0.25)

        return Reply(stream=chunks(), media_type="text/event-stream")


async def auth(call: Call, next_: Handler) -> Reply:
    k_clock = call.attributes["clock"]
    k_clock.advance(0.001)
    return await next_(call)


def pipeline(k: Kit, router: FakeRouter) -> Handler:
    """The observability stages around ``router``; like the edge, runs the call's deferred work after the reply."""
    tracing = k.telemetry.tracing
    handler = chain(
        [TelemetryStage(k.telemetry), Traced("auth", auth, tracing)],
        terminal=traced_handler("route", router, tracing),
    )

    async def edge(call: Call) -> Reply:
        try:
            return await handler(call)
        finally:
            await call.finish()

    return edge


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    """A finished span's attributes (every span the gateway ends has some)."""
    assert span.attributes is not None, span.name
    return span.attributes


def parent_id(span: ReadableSpan) -> int:
    """The span id of a span's parent (it must have one)."""
    assert span.parent is not None, span.name
    return span.parent.span_id


def duration_ns(span: ReadableSpan) -> int:
    assert span.start_time is not None and span.end_time is not None, span.name
    return span.end_time - span.start_time
