"""Build a Telemetry over FakeClock, an in-memory span exporter and a string log stream."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.call import Call, Handler, Reply, Stage
from gateway.clock import FakeClock
from gateway.config import Settings
from gateway.observability.telemetry import Telemetry
from gateway.requestlog import RequestRecord
from gateway.rng import Rng


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
    async def receive() -> bytes:
        return b""

    return Call(
        request_id=rid,
        method="POST",
        path="/v1/chat/completions",
        headers=headers or {},
        receive_body=receive,
        record=RequestRecord(request_id=rid, ts_arrival=clock.now()),
        started=clock.monotonic(),
        deadline=clock.monotonic() + 60,
    )


def chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """The pipeline's wrapping, first stage outermost (as gateway.pipeline.chain)."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, next_: Handler) -> Handler:
    async def handle(call: Call) -> Reply:
        return await stage(call, next_)

    return handle
