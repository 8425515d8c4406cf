"""Pipeline stages of observability.

:class:`TelemetryStage` (right after the request id): opens the request's span, hands its ``traceparent`` to the
adapters (``call.attributes["upstream_headers"]``), times the request, and when the reply is complete (the end of
a stream included) writes the log line, the metrics, the attempt spans and the request-log record.

:class:`Traced` wraps another stage in a child span that ends when that stage hands over to the next one (or
returns, or — for a stream — when the stream ends)::

    Traced("auth", AuthStage(...), telemetry.tracing)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from functools import partial

from opentelemetry.trace import Span, Status, StatusCode

from gateway.adapters.sse import DONE
from gateway.call import Call, Guarded, Handler, Reply, Stage, close_stream, finish_with
from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.observability.logs import EventLog, round6
from gateway.observability.telemetry import Telemetry
from gateway.observability.tracing import UPSTREAM_HEADERS, Tracing, trace_id
from gateway.requestrecord import RequestRecord


def _end(rec: RequestRecord, outcome: str) -> None:
    """The one place a request's outcome is written: the first ending decided stands (``ok`` until one is)."""
    if rec.outcome == "ok":
        rec.outcome = outcome


def _outcome_for(status: int, code: str | None) -> str:
    if code in ("rate_limit_exceeded", "insufficient_quota", "budget_exceeded"):
        return "quota_rejected"
    if status >= 500:
        return "error"
    if status >= 400:
        return "client_error"
    return "ok"


class TelemetryStage:
    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        self._clock = telemetry.clock

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        t = self._t
        span = t.tracing.start_request(call.method, call.path, call.headers)
        call.span = span
        t.tracing.propagate(span, call.attributes.setdefault(UPSTREAM_HEADERS, {}))
        t.metrics.request_started()
        rec = call.record

        async def done() -> None:
            await self._finish(call)

        # On every path the request's line, metrics and record wait for the reply to be out (the edge runs
        # ``call.after_reply``, also when the client is gone), after whatever the inner stages deferred.
        try:
            reply = await next_(call)
        except GatewayError as exc:
            rec.status = exc.status
            rec.error_type = rec.error_type or exc.code or exc.type
            _end(rec, exc.outcome or _outcome_for(exc.status, exc.code))
            call.after_reply.append(done)
            raise
        except BaseException as exc:
            rec.status = rec.status or (499 if isinstance(exc, asyncio.CancelledError) else 500)
            _end(rec, "cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
            rec.error_type = rec.error_type or type(exc).__name__
            call.after_reply.append(done)
            raise
        if not rec.status:
            rec.status = reply.status
        if rec.status >= 400:
            _end(rec, _outcome_for(rec.status, None))
        if reply.stream is not None:
            inner = reply.stream

            async def unstarted() -> None:  # closed before its first byte: the client never had it
                _end(rec, "cancelled")
                await close_stream(inner)

            reply.stream = Guarded(self._observe(call, inner), if_unstarted=unstarted)
        return finish_with(call, reply, done)

    async def _observe(self, call: Call, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Relay the stream, noting its first byte and how it ended. A stream that carries an error type (the
        relay's error event) ended in an error, whether the client stays to its end or not."""
        rec = call.record
        complete = False
        try:
            async for chunk in stream:
                if rec.ts_first_byte is None:
                    rec.ts_first_byte = self._clock.now()
                complete = chunk.endswith(DONE)  # [DONE] may share its body part with the last chunks
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            if rec.error_type is not None:
                _end(rec, "error")
            elif not complete:  # a client leaving once it has [DONE] cancelled nothing
                _end(rec, "cancelled")
            raise
        except Exception as exc:
            rec.error_type = rec.error_type or type(exc).__name__
            _end(rec, "error")
            raise
        else:
            if rec.error_type is not None:
                _end(rec, "error")
        finally:
            await close_stream(stream)

    async def _finish(self, call: Call) -> None:
        t = self._t
        rec = call.record
        now = self._clock.now()
        duration = max(0.0, self._clock.monotonic() - call.started)
        if rec.ts_end is None:
            rec.ts_end = now
        if rec.ts_first_byte is None and rec.status and rec.outcome != "cancelled":
            rec.ts_first_byte = rec.ts_end  # a JSON reply: its first byte goes out with the whole body
        ttft = None if rec.ts_first_byte is None else max(0.0, rec.ts_first_byte - rec.ts_arrival)
        try:
            t.metrics.request_ended()
            t.metrics.request_finished(call.path, rec, duration_s=duration, ttft_s=ttft)
            span: Span | None = call.span
            trace = None
            if span is not None:
                parent = call.attributes.get("span.route") or span
                operation = "embeddings" if call.path == "/v1/embeddings" else "chat"
                t.tracing.record_attempts(parent, rec.attempts, operation)
                t.tracing.finish_request(span, rec, operation)
                trace = trace_id(span)
            t.logs.request(rec, trace_id=trace, latency_s=duration, ttft_s=ttft, payload=call.payload)
            if t.requestlog is not None:
                t.requestlog.submit(rec)
            for sink in t.sinks:
                sink.submit(rec)
        except Exception as exc:  # observability must never fail a request
            t.logs.event("telemetry_error", level="error", request_id=rec.request_id, error=type(exc).__name__)


class Traced:
    """A stage inside a child span of the request span, named ``name``. ``propagate``: make this span the
    parent of upstream calls (for the routing stage)."""

    def __init__(self, name: str, stage: Stage, tracing: Tracing, *, propagate: bool = False) -> None:
        self.name = name
        self._stage = stage
        self._tracing = tracing
        self._propagate = propagate

    def __call__(self, call: Call, next_: Handler) -> Awaitable[Reply]:
        """While nothing records, the stage's own coroutine: no child span, no hand-off bookkeeping, and no frame
        of its own for each resumption of the awaits inside it to pass through."""
        if call.span is None or not self._tracing.recording:
            return self._stage(call, next_)
        return self._traced(call, next_)

    async def _traced(self, call: Call, next_: Handler) -> Reply:
        root: Span = call.span
        tracing = self._tracing
        span = tracing.start_child(root, self.name)
        call.attributes[f"span.{self.name}"] = span
        if self._propagate:
            call.attributes.setdefault(UPSTREAM_HEADERS, {}).update(tracing.traceparent(span))
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                tracing.end(span)

        async def handoff(c: Call) -> Reply:
            end()
            return await next_(c)

        try:
            reply = await self._stage(call, handoff)
        except GatewayError as exc:
            if not ended and span.is_recording():
                span.set_attribute("error.type", exc.code or exc.type)
                if exc.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            end()
            raise
        except BaseException:
            end()
            raise
        if reply.stream is None:
            end()
            return reply

        async def done() -> None:
            end()

        return finish_with(call, reply, done)


def traced_handler(name: str, handler: Handler, tracing: Tracing, *, propagate: bool = True) -> Handler:
    """A terminal handler (e.g. the router) inside a child span named ``name``; by default that span is the
    parent of the upstream calls. While nothing records, calling it returns ``handler``'s own coroutine."""
    return partial(Traced(name, _Terminal(handler), tracing, propagate=propagate), next_=handler)


class _Terminal:
    """A terminal handler as a stage: it has no next one."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def __call__(self, call: Call, next_: Handler) -> Awaitable[Reply]:
        return self._handler(call)


class RequestLine:
    """Outermost stage of the routes outside the API pipelines (health, readiness, admin, 404, 405): one
    ``request`` log line (id, method, path, status, latency) per request, once its reply, errors rendered, is
    ready. These requests are not API traffic: no metrics, no request-log record."""

    def __init__(self, log: EventLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        reply = await next_(call)
        status = reply.status
        self._log.event(
            "request",
            level="error" if status >= 500 else "warning" if status >= 400 else "info",
            request_id=call.request_id,
            method=call.method,
            path=call.path[:200],
            status=status,
            latency_s=round6(max(0.0, self._clock.monotonic() - call.started)),
        )
        return reply
