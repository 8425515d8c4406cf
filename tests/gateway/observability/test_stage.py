from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from gateway.call import Call, Reply, finish_with
from gateway.errors import RateLimited, UpstreamFailed
from gateway.observability.requestlog import read_records
from gateway.observability.stage import TelemetryStage
from gateway.pipeline import chain

from .conftest import make_settings
from .helpers import FakeRouter, Kit, attrs, duration_ns, kit, make_call, parent_id, pipeline

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"


async def _drain(reply: Reply) -> bytes:
    assert reply.stream is not None
    return b"".join([c async for c in reply.stream])


@pytest.mark.parametrize("stream", [False, True])
async def test_span_tree_genai_attributes_and_client_traceparent(stream: bool) -> None:
    k = kit(make_settings())
    router = FakeRouter(k, stream=stream)
    call = make_call(k.clock, headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"})
    call.attributes["clock"] = k.clock
    reply = await pipeline(k, router)(call)
    if stream:
        assert k.spans.get_finished_spans() == () or all(
            s.name != "POST /v1/chat/completions" for s in k.spans.get_finished_spans()
        )
        assert await _drain(reply) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    spans = {s.name: s for s in k.spans.get_finished_spans()}
    assert set(spans) == {"POST /v1/chat/completions", "auth", "route", "chat gpt-4o-mini", "chat llama-3-8b"}
    root = spans["POST /v1/chat/completions"]
    assert root.kind is SpanKind.SERVER
    assert f"{root.context.trace_id:032x}" == CLIENT_TRACE
    assert root.parent is not None and f"{parent_id(root):016x}" == CLIENT_PARENT
    assert parent_id(spans["auth"]) == root.context.span_id
    assert parent_id(spans["route"]) == root.context.span_id
    for name in ("chat gpt-4o-mini", "chat llama-3-8b"):
        assert parent_id(spans[name]) == spans["route"].context.span_id
        assert spans[name].kind is SpanKind.CLIENT
    assert attrs(root)["gen_ai.operation.name"] == "chat"
    assert attrs(root)["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs(root)["gen_ai.provider.name"] == "vllm"
    assert attrs(root)["gen_ai.usage.input_tokens"] == 11
    assert attrs(root)["gen_ai.usage.output_tokens"] == 3
    assert "error.type" not in attrs(root)
    failed = spans["chat gpt-4o-mini"]
    assert attrs(failed)["error.type"] == "server_error"
    assert attrs(failed)["gen_ai.provider.name"] == "openai"
    assert failed.status.status_code is StatusCode.ERROR
    assert duration_ns(failed) == pytest.approx(5e8, abs=1e3)
    # auth 1 ms + attempts 0.5 s + 1 s (JSON) or 4 x 0.25 s (stream); ns from float epoch seconds: ~µs precision
    assert duration_ns(root) == pytest.approx(1.501e9, abs=1e3)
    # the route span is the parent of the upstream calls, in the client's trace
    route_id = f"{spans['route'].context.span_id:016x}"
    assert router.seen_headers["traceparent"] == f"00-{CLIENT_TRACE}-{route_id}-01"


async def test_same_seed_same_ids() -> None:
    ids = []
    for _ in range(2):
        k = kit(make_settings())
        call = make_call(k.clock)
        call.attributes["clock"] = k.clock
        await pipeline(k, FakeRouter(k))(call)
        ids.append(sorted((s.name, s.context.trace_id, s.context.span_id) for s in k.spans.get_finished_spans()))
    assert ids[0] == ids[1]


async def test_no_exporter_records_nothing_but_still_propagates() -> None:
    from gateway.clock import FakeClock
    from gateway.observability.telemetry import Telemetry
    from gateway.rng import Rng

    clock = FakeClock()
    t = Telemetry.from_settings(make_settings(), clock=clock, rng=Rng(1), environ={})
    k = Kit(t, clock, None, None)  # type: ignore[arg-type]  # no exporter and no log: nothing to read
    router = FakeRouter(k)
    call = make_call(clock)
    call.attributes["clock"] = clock
    await pipeline(k, router)(call)
    assert not call.span.is_recording()
    assert router.seen_headers["traceparent"].endswith("-00")


async def test_error_reply_logs_metrics_and_record(tmp_path: Path) -> None:
    k = kit(make_settings(), request_log=tmp_path / "requests.jsonl")
    await k.telemetry.start()
    call = make_call(k.clock)
    call.attributes["clock"] = k.clock
    with pytest.raises(UpstreamFailed):
        await pipeline(k, FakeRouter(k, fail=True))(call)
    await k.telemetry.stop()
    (rec,) = list(read_records(tmp_path / "requests.jsonl"))
    assert (rec["status"], rec["outcome"], rec["error_type"], rec["run_id"]) == (
        502,
        "error",
        "upstream_error",
        "run-1",
    )
    assert rec["ts_end"] - rec["ts_arrival"] == pytest.approx(0.501)
    (line,) = [orjson.loads(x) for x in k.log.getvalue().splitlines()]
    assert line["event"] == "request" and line["level"] == "error" and line["status"] == 502
    assert line["trace_id"] == f"{call.span.get_span_context().trace_id:032x}"
    spans = {s.name: s for s in k.spans.get_finished_spans()}
    assert attrs(spans["POST /v1/chat/completions"])["error.type"] == "upstream_error"
    assert attrs(spans["route"])["error.type"] == "upstream_error"
    assert spans["route"].status.status_code is StatusCode.ERROR


async def test_quota_rejection_outcome() -> None:
    k = kit(make_settings())

    async def reject(call: Call) -> Reply:
        raise RateLimited("slow down")

    call = make_call(k.clock)
    with pytest.raises(RateLimited):
        await chain([TelemetryStage(k.telemetry)], terminal=reject)(call)
    assert (call.record.status, call.record.outcome) == (429, "quota_rejected")


async def test_stream_closed_by_client_is_cancelled_and_finished_once(tmp_path: Path) -> None:
    k = kit(make_settings(), request_log=tmp_path / "r.jsonl")
    await k.telemetry.start()
    call = make_call(k.clock)
    call.attributes["clock"] = k.clock
    reply = await pipeline(k, FakeRouter(k, stream=True))(call)
    assert reply.stream is not None
    it = reply.stream.__aiter__()
    assert await it.__anext__() == b"data: 0\n\n"
    await reply.stream.aclose()  # type: ignore[attr-defined]  # the stream is an async generator
    await k.telemetry.stop()
    (rec,) = list(read_records(tmp_path / "r.jsonl"))
    assert rec["outcome"] == "cancelled"
    assert rec["ts_first_byte"] - rec["ts_arrival"] == pytest.approx(0.751)
    assert len(k.log.getvalue().splitlines()) == 1
    assert b"faultline_requests_in_flight 0.0" in k.telemetry.metrics.exposition()


async def test_stream_closed_by_client_after_its_last_frame_is_complete(tmp_path: Path) -> None:
    k = kit(make_settings(), request_log=tmp_path / "r.jsonl")
    await k.telemetry.start()
    call = make_call(k.clock)
    call.attributes["clock"] = k.clock
    reply = await pipeline(k, FakeRouter(k, stream=True, done=True))(call)
    assert reply.stream is not None
    chunks = [chunk async for chunk in _until_done(reply.stream)]
    assert chunks[-1] == b"data: [DONE]\n\n"
    await reply.stream.aclose()  # type: ignore[attr-defined]  # the stream is an async generator
    await k.telemetry.stop()
    (rec,) = list(read_records(tmp_path / "r.jsonl"))
    assert (rec["status"], rec["outcome"]) == (200, "ok")


async def _until_done(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk
        if chunk == b"data: [DONE]\n\n":
            return


async def test_the_request_line_comes_after_the_work_inner_stages_deferred_even_when_an_outer_stage_fails() -> None:
    """An inner stage prices the reply once it is out; a stage between it and telemetry then refuses the reply.
    The log line still carries the price: telemetry's own work is queued last, on every path."""
    k = kit(make_settings())

    async def pricing(call: Call, next_: Any) -> Reply:
        reply = await next_(call)

        async def priced() -> None:
            call.record.cost_usd = 1.5

        return finish_with(call, reply, priced)

    async def refusing(call: Call, next_: Any) -> Reply:
        await next_(call)
        raise RateLimited("slow down")

    async def answer(call: Call) -> Reply:
        return Reply(body=b"{}")

    call = make_call(k.clock)
    with pytest.raises(RateLimited):
        await chain([TelemetryStage(k.telemetry), refusing, pricing], terminal=answer)(call)
    assert k.log.getvalue() == ""  # nothing written before the (error) reply is out
    await call.finish()  # what the edge does once it is
    line = orjson.loads(k.log.getvalue())
    assert (line["status"], line["cost_usd"]) == (429, 1.5)


async def test_embeddings_spans_name_their_operation() -> None:
    k = kit(make_settings())
    call = make_call(k.clock)
    call.path = "/v1/embeddings"
    call.attributes["clock"] = k.clock
    await pipeline(k, FakeRouter(k, stream=False))(call)
    spans = {s.name: s for s in k.spans.get_finished_spans()}
    assert {"embeddings gpt-4o-mini", "embeddings llama-3-8b"} <= set(spans)
    root = next(s for s in spans.values() if s.kind is SpanKind.SERVER)
    assert attrs(root)["gen_ai.operation.name"] == "embeddings"
    assert attrs(spans["embeddings llama-3-8b"])["gen_ai.operation.name"] == "embeddings"
