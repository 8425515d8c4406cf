"""Prometheus metrics: one :class:`Metrics` per app, owning its own registry.

Label values are bounded: consumers, models and providers only from the configuration (else ``unknown``), routes
from a fixed list (else ``other``), and every other label keeps at most :data:`MAX_VALUES` distinct values (then
``other``). Names carry units and ``_total`` per Prometheus conventions; every name starts with ``faultline_``.

Multi-process mode: when ``$PROMETHEUS_MULTIPROC_DIR`` is set *before prometheus_client is imported* (as for a
gateway run with several workers), values live in that directory and :meth:`Metrics.exposition` aggregates all
workers with ``MultiProcessCollector``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.observability.metricfamilies import MetricFamilies
from gateway.observability.requestmetrics import RequestMetrics
from gateway.observability.tally import FoldOnCollect, Tally
from gateway.requestrecord import RequestRecord

ROUTES = ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/health", "/v1/ready")
MAX_VALUES = 32
BREAKER_STATES = ("closed", "open", "half_open")
UNKNOWN = "unknown"
OTHER = "other"


class _Bounded:
    """Keeps a label to a fixed vocabulary, or to the first ``limit`` values seen."""

    def __init__(self, allowed: Iterable[str] | None = None, *, fallback: str = OTHER, limit: int = MAX_VALUES):
        self._fixed = allowed is not None
        self._seen: set[str] = set(allowed or ())
        self._fallback = fallback
        self._limit = limit

    def extend(self, values: Iterable[str]) -> None:
        """More known values (a reloaded configuration's names); none is forgotten, so the label stays bounded."""
        self._seen.update(values)

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return self._fallback
        if value in self._seen:
            return value
        if self._fixed or len(self._seen) >= self._limit:
            return self._fallback
        self._seen.add(value)
        return value


class Metrics(MetricFamilies):
    """All gateway metrics. Methods are cheap (a dict lookup and a float add each) and never raise."""

    def __init__(
        self,
        *,
        consumers: Iterable[str] = (),
        models: Iterable[str] = (),
        providers: Iterable[str] = (),
        daily_budgets: Mapping[str, int] | None = None,
        multiprocess_dir: str | None = None,
    ) -> None:
        """``daily_budgets``: consumer -> tokens per day, for the remaining-budget gauge (read from each request's
        quota decision, ``decisions.quota.day_used``)."""
        self.daily_budgets = dict(daily_budgets or {})
        self.registry = CollectorRegistry(auto_describe=True)
        self._tally = Tally(direct=bool(multiprocess_dir) or values.ValueClass is not values.MutexValue)
        self.registry.register(FoldOnCollect(self._tally))  # first: a collection folds before reading any value
        self.multiprocess_dir = multiprocess_dir
        self.consumer = _Bounded(consumers, fallback=UNKNOWN)
        self.model = _Bounded(models, fallback=UNKNOWN)
        self.provider = _Bounded(providers, fallback=UNKNOWN)
        self.route = _Bounded(ROUTES)
        self._words: dict[str, _Bounded] = {}  # per label: outcomes, reasons, limits, actions, faults, ...
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # bounded: every label value is bounded
        self._decision_cells: dict[tuple[str, str], Any] = {}  # (kind, backend) -> its cell, or child if direct
        self._budget_children: dict[str, Any] = {}  # consumer -> its remaining-budget child
        self._declare_families(self.registry)
        self._per_request = RequestMetrics(self, self._tally)  # after the families: it holds their children

    def word(self, label: str, value: str | None) -> str:
        """``value`` for a free-form label, bounded to the first :data:`MAX_VALUES` values of that label."""
        bounded = self._words.get(label)
        if bounded is None:
            bounded = self._words[label] = _Bounded()
        return bounded(value)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, cached: the hot path pays a dict lookup instead of label validation."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def cache_lookup(self, result: str) -> None:
        self._child(self.cache_lookups, self.word("cache_result", result)).inc()

    def cache_moved(self, op: str, n: int) -> None:
        self._child(self.cache_bytes, self.word("cache_op", op)).inc(n)

    def budget_charged(self, consumer: str, usd: float) -> None:
        self._child(self.budget_spent, self.consumer(consumer)).inc(usd)

    def budget_refused(self, scope: str, period: str) -> None:
        self._child(self.budget_rejected, self.word("scope", scope), self.word("period", period)).inc()

    # -- per request -------------------------------------------------------------------------------------------

    def request_finished(self, route: str, rec: RequestRecord, *, duration_s: float, ttft_s: float | None) -> None:
        """Everything a finished request contributes, read from its record (tallied: gateway/observability/tally.py)."""
        self._per_request.finished(route, rec, duration_s=duration_s, ttft_s=ttft_s)
        if self.daily_budgets and rec.consumer in self.daily_budgets:
            self._budget_after(rec.consumer, rec.decisions.get("quota"))

    def _budget_after(self, consumer: str, quota: dict[str, Any] | None) -> None:
        """Tokens left today: the use seen by this request's check, its reservation replaced by its charge."""
        if not quota or "day_used" not in quota:
            return
        used = int(quota["day_used"])
        if quota.get("decision") == "ok" and "charged" in quota:
            used += int(quota["charged"]) - int(quota.get("reserved", 0))
        self._tally.set(self._budget_child(consumer), max(0, self.daily_budgets[consumer] - used))

    def _budget_child(self, consumer: str) -> Any:
        """``consumer``'s remaining-budget child, kept per consumer once the consumer's label is its own name (a
        bounded label's known values only grow, so that never changes)."""
        child = self._budget_children.get(consumer)
        if child is None:
            label = self.consumer(consumer)
            child = self._child(self.budget_remaining, label)
            if label == consumer:
                self._budget_children[consumer] = child
        return child

    def request_started(self) -> None:
        self._per_request.started()

    def request_ended(self) -> None:
        self._per_request.ended()

    # -- events ------------------------------------------------------------------------------------------------

    def retry_budget_exhausted_for(self, provider: str) -> None:
        self.retry_budget_exhausted.labels(self.provider(provider)).inc()

    def breaker_transition(self, provider: str, old: str, new: str, reason: str) -> None:
        p = self.provider(provider)
        self.breaker_transitions.labels(p, self.word("state", old), self.word("state", new)).inc()
        if new == "open":
            self.breaker_opens.labels(p, self.word("reason", reason)).inc()
        self.set_breaker_state(provider, new)

    def slow_call(self, provider: str) -> None:
        self.slow_calls.labels(self.provider(provider)).inc()

    def hedge(self, provider: str, *, won: bool) -> None:
        self.hedges.labels(self.provider(provider), "won" if won else "sent").inc()

    def set_breaker_state(self, provider: str, state: str) -> None:
        p = self.provider(provider)
        for s in BREAKER_STATES:
            self.breaker_state.labels(p, s).set(1.0 if s == state else 0.0)

    def forget_provider(self, provider: str, *, health_only: bool = False) -> None:
        """Drop ``provider``'s health series (and its breaker-state series unless ``health_only``): a reload removed
        it (or its health check). prometheus_client cannot drop a series in multi-process mode: there they stay."""
        p = self.provider(provider)
        if self.multiprocess_dir or p != provider:
            return
        self.provider_healthy.remove(p)
        if not health_only:
            for s in BREAKER_STATES:
                self.breaker_state.remove(p, s)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def shed_request(self, reason: str) -> None:
        self.shed.labels(self.word("reason", reason)).inc()

    def quota_rejected(self, consumer: str | None, limit: str) -> None:
        self.quota_rejections.labels(self.consumer(consumer), self.word("limit", limit)).inc()

    def quota_decision(self, consumer: str | None, kind: str, backend: str) -> None:
        cell = self._decision_cells.get((kind, backend))
        if cell is None:
            cell = self._decision_cell(kind, backend)
        if self._tally.direct:
            cell.inc()
        else:
            cell[0] += 1.0
        if kind != "ok":
            self.quota_rejected(consumer, kind)

    def _decision_cell(self, kind: str, backend: str) -> Any:
        """The decision counter's child for ``kind`` and ``backend`` (its tally cell unless the tally is direct),
        kept once both labels are their own values (a bounded label's known values only grow)."""
        labels = (self.word("kind", kind), self.word("backend", backend))
        child = self._child(self.quota_decisions, *labels)
        cell = child if self._tally.direct else self._tally.cell(child)
        if labels == (kind, backend):
            self._decision_cells[labels] = cell
        return cell

    def set_budget_remaining(self, consumer: str, tokens: float) -> None:
        self._tally.set(self._budget_child(consumer), tokens)  # after any tallied value, as its last

    def guardrail_action(self, guardrail: str, action: str) -> None:
        self.guardrail_actions.labels(self.word("guardrail", guardrail), self.word("action", action)).inc()

    def chaos_injected(self, fault: str, provider: str) -> None:
        self.chaos_injections.labels(self.word("fault", fault), self.provider(provider)).inc()

    def client_connection_closed(self, reason: str) -> None:
        self._child(self.client_connections_closed, self.word("connection_reason", reason)).inc()

    def state_store_failure(self, operation: str) -> None:
        self.state_store_failures.labels(self.word("operation", operation)).inc()

    def close(self) -> None:
        """This process stops (a worker's graceful shutdown): in multi-process mode its live gauges (in flight,
        queue depth) leave the sums; its counters and histograms stay."""
        self._tally.fold()
        if self.multiprocess_dir and os.path.isdir(self.multiprocess_dir):
            # Ignored on the next line: prometheus_client leaves it unannotated
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    # -- exposition --------------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format of a scrape: this registry, or every worker's values in multi-process mode."""
        self._tally.fold()
        if self.multiprocess_dir and os.path.isdir(self.multiprocess_dir):
            registry = CollectorRegistry()
            # Ignored on the next line: prometheus_client leaves it unannotated
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
