"""The app's observability, assembled once per app: metrics, traces, JSON logs, the request log, the metrics
listener. Implements every Protocol of :mod:`gateway.observability.events`.

``Telemetry.from_settings(settings, clock=..., rng=...)`` in build_runtime; ``await start()`` / ``await stop()``
in the app lifespan; ``TelemetryStage(telemetry)`` in the pipeline.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import IO, Protocol

from opentelemetry.sdk.trace import SpanProcessor

from gateway.clock import Clock
from gateway.config import Settings
from gateway.observability.logs import EventLog
from gateway.observability.metrics import Metrics
from gateway.observability.nexttick import NextTick
from gateway.observability.requestlog import RequestLogWriter
from gateway.observability.server import MetricsServer
from gateway.observability.tracing import Tracing, genai_provider
from gateway.requestrecord import RequestRecord
from gateway.rng import Rng


class RecordSink(Protocol):
    """Takes each finished request's record, without blocking (e.g. the usage writer: gateway/usage/writer.py)."""

    def submit(self, rec: RequestRecord) -> None: ...


class Telemetry:
    def __init__(
        self,
        *,
        clock: Clock,
        metrics: Metrics,
        tracing: Tracing,
        logs: EventLog,
        requestlog: RequestLogWriter | None = None,
        server: MetricsServer | None = None,
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self.tracing = tracing
        self.logs = logs
        self.requestlog = requestlog
        self.server = server
        self.sinks: list[RecordSink] = []  # more takers of each finished record, besides the request log
        self.providers: dict[str, bool] = {}  # the configured providers (name: has a health check), see follow()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock,
        rng: Rng,
        environ: Mapping[str, str] | None = None,
        span_processors: Sequence[SpanProcessor] = (),
        log_stream: IO[str] | None = None,
    ) -> Telemetry:
        """Build from configuration. ``environ`` (default ``os.environ``) may set $FAULTLINE_REQUEST_LOG,
        $FAULTLINE_RUN_ID and $PROMETHEUS_MULTIPROC_DIR. ``span_processors`` are added to the OTLP one (tests pass
        a SimpleSpanProcessor over an InMemorySpanExporter)."""
        env = os.environ if environ is None else environ
        obs = settings.observability
        metrics = Metrics(
            consumers=[c.name for c in settings.consumers],
            models=[n for g in settings.models for n in (g.name, *g.aliases)],
            providers=[p.name for p in settings.providers],
            daily_budgets={c.name: tpd for c in settings.consumers if (tpd := settings.limits_for(c).tpd)},
            multiprocess_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )
        for p in settings.providers:
            metrics.set_breaker_state(p.name, "closed")
        tracing = _tracing(settings, clock=clock, rng=rng, span_processors=span_processors)
        logs = EventLog(clock, stream=log_stream, level=obs.log_level, log_payloads=obs.log_payloads)
        path = env.get("FAULTLINE_REQUEST_LOG") or obs.request_log_path
        run_id = env.get("FAULTLINE_RUN_ID") or obs.run_id
        writer = None
        if path:

            def lost(records: int, error: str) -> None:
                logs.event("request_log_error", level="error", path=str(path), records=records, error=error)

            writer = RequestLogWriter(path, max_bytes=obs.request_log_max_bytes, run_id=run_id, on_error=lost)
        port = settings.server.metrics_port
        server = None
        if port:
            multi = metrics.multiprocess_dir is not None
            server = MetricsServer(metrics.exposition, host=settings.server.host, port=port, reuse_port=multi)
        telemetry = cls(clock=clock, metrics=metrics, tracing=tracing, logs=logs, requestlog=writer, server=server)
        telemetry.providers = _providers(settings)
        return telemetry

    def follow(self, settings: Settings) -> None:
        """A reloaded configuration (gateway/reload.py): its consumers, models and providers become known label
        values (those of earlier generations stay; a new provider's breaker shows closed), its daily budgets feed
        the remaining-budget gauge. A provider removed drops its breaker-state and health series, one whose health
        check was removed its health series."""
        m = self.metrics
        m.consumer.extend(c.name for c in settings.consumers)
        m.model.extend(n for g in settings.models for n in (g.name, *g.aliases))
        m.provider.extend(p.name for p in settings.providers if m.provider(p.name) != p.name)
        now = _providers(settings)
        for name, checked in self.providers.items():
            if name not in now or (checked and not now[name]):
                m.forget_provider(name, health_only=name in now)
        for name in now.keys() - self.providers.keys():
            m.set_breaker_state(name, "closed")
        self.providers = now
        m.daily_budgets = {c.name: tpd for c in settings.consumers if (tpd := settings.limits_for(c).tpd)}
        self.tracing.name_providers({p.name: genai_provider(p.kind) for p in settings.providers})

    async def start(self) -> None:
        tick = NextTick(asyncio.get_running_loop())  # one callback a tick writes both the log lines and the records
        self.logs.start(tick)
        if self.requestlog is not None:
            await self.requestlog.start(tick)
        if self.server is not None:
            try:
                await self.server.start()
            except OSError as exc:  # serving requests matters more than serving metrics: say so loudly, go on
                self.logs.event("metrics_listener_failed", level="error", port=self.server.port, error=str(exc))
                self.server = None

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.requestlog is not None:
            await self.requestlog.stop()
        self.tracing.shutdown()
        self.metrics.close()
        self.logs.close()

    # -- events (gateway.observability.events) -----------------------------------------------------------------

    def breaker_transition(self, provider: str, old: str, new: str, reason: str) -> None:
        self.metrics.breaker_transition(provider, old, new, reason)
        level = "warning" if new == "open" else "info"
        self.logs.event(
            "breaker_transition", level=level, provider=provider, from_state=old, to_state=new, reason=reason
        )

    def slow_call(self, provider: str) -> None:
        self.metrics.slow_call(provider)

    def retry_budget_exhausted(self, provider: str) -> None:
        self.metrics.retry_budget_exhausted_for(provider)

    def hedge_sent(self, provider: str) -> None:
        self.metrics.hedge(provider, won=False)

    def hedge_won(self, provider: str) -> None:
        self.metrics.hedge(provider, won=True)

    def state_store_failure(self, operation: str, error: str) -> None:
        self.metrics.state_store_failure(operation)
        self.logs.event("state_store_failure", level="warning", operation=operation, error=error)

    def quota_rejected(self, consumer: str | None, limit: str) -> None:
        self.metrics.quota_rejected(consumer, limit)

    def budget_remaining(self, consumer: str, tokens: float) -> None:
        self.metrics.set_budget_remaining(consumer, tokens)

    def shed(self, reason: str) -> None:
        self.metrics.shed_request(reason)

    def queue_depth(self, depth: int) -> None:
        self.metrics.set_queue_depth(depth)

    def chaos_injected(self, fault: str, provider: str) -> None:
        self.metrics.chaos_injected(fault, provider)
        self.logs.event("chaos_injected", level="warning", fault=fault, provider=provider)

    def guardrail_action(self, guardrail: str, action: str) -> None:
        self.metrics.guardrail_action(guardrail, action)

    # gateway.quota.limiter.QuotaEvents
    def decision(self, consumer: str, kind: str, backend: str) -> None:
        self.metrics.quota_decision(consumer, kind, backend)

    def settled(self, consumer: str, delta: int | None) -> None:
        pass  # a lost settle is reported by store_error

    def store_transition(self, healthy: bool, reason: str) -> None:
        self.metrics.state_store_up.set(1.0 if healthy else 0.0)
        level = "info" if healthy else "warning"
        self.logs.event("state_store_transition", level=level, healthy=healthy, reason=reason)

    def store_error(self, op: str, error: str) -> None:
        self.state_store_failure(op, error)

    def store_false_outage(self) -> None:
        self.metrics.state_store_false_outages.inc()

    def store_lag_excused(self, op: str) -> None:
        self.metrics.state_store_lag_excused.labels(self.metrics.word("operation", op)).inc()

    # gateway.upstream.health.HealthEvents
    def provider_health(self, provider: str, healthy: bool, reason: str) -> None:
        self.metrics.provider_healthy.labels(self.metrics.word("provider", provider)).set(1.0 if healthy else 0.0)
        level = "info" if healthy else "warning"
        self.logs.event("provider_health", level=level, provider=provider, healthy=healthy, reason=reason)

    # gateway.budget.stage.BudgetEvents
    def budget_spent(self, consumer: str, usd: float) -> None:
        if usd > 0:
            self.metrics.budget_charged(consumer, usd)

    def budget_rejected(self, scope: str, period: str) -> None:
        self.metrics.budget_refused(scope, period)

    # gateway.cache.stage.CacheEvents
    def cache_lookup(self, result: str) -> None:
        self.metrics.cache_lookup(result)

    def cache_bytes(self, op: str, n: int) -> None:
        self.metrics.cache_moved(op, n)

    # gateway.usage.writer.UsageEvents
    def usage_written(self, records: int) -> None:
        self.metrics.usage_records.labels("written").inc(records)

    def usage_dropped(self, records: int, reason: str) -> None:
        self.metrics.usage_records.labels("dropped").inc(records)

    def config_error(self, message: str) -> None:
        self.logs.event("config_error", level="error", message=message)

    def config_reloaded(self, result: str, *, generation: int, **fields: object) -> None:
        """One reload's outcome: its metrics and its ``config_reload`` log line (``config_error`` when refused)."""
        self.metrics.reloads.reloaded(result, generation=generation, at=self.clock.now())
        if result == "ok":
            self.logs.event("config_reload", level="warning", result=result, generation=generation, **fields)
        else:
            self.logs.event("config_error", level="error", result=result, generation=generation, **fields)


def _providers(settings: Settings) -> dict[str, bool]:
    return {p.name: p.health_check is not None for p in settings.providers}


def _tracing(settings: Settings, *, clock: Clock, rng: Rng, span_processors: Sequence[SpanProcessor]) -> Tracing:
    """The tracer: ``span_processors``, plus a batching OTLP exporter when ``observability.otlp_endpoint`` is set."""
    obs = settings.observability
    processors = list(span_processors)
    if obs.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=obs.otlp_endpoint)))
    return Tracing(
        clock=clock,
        rng=rng.child("trace-ids"),
        service_name=obs.service_name,
        sample_ratio=obs.sample_ratio,
        processors=processors,
        provider_kinds={p.name: genai_provider(p.kind) for p in settings.providers},
    )
