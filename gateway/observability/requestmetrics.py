"""What one request contributes to the metrics, tallied (gateway/observability/tally.py).

The children a finished request updates are looked up once per combination of its raw label values and kept,
only when every one of those values is a known one (a later configuration reload could give an unknown one a
name; the uncached path still resolves it every time).
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.observability.tally import Tally
from gateway.requestrecord import RequestRecord


class Label(Protocol):
    def __call__(self, value: str | None) -> str: ...


class Collectors(Protocol):
    """The metrics a request updates and the label bounds (gateway/observability/metrics.py)."""

    requests: Any
    request_duration: Any
    ttft: Any
    overhead: Any
    attempts: Any
    attempt_duration: Any
    fallbacks: Any
    retries: Any
    tokens: Any
    cost: Any
    in_flight: Any

    @property
    def consumer(self) -> Label: ...

    @property
    def model(self) -> Label: ...

    @property
    def provider(self) -> Label: ...

    @property
    def route(self) -> Label: ...

    def word(self, label: str, value: str | None) -> str: ...

    def _child(self, metric: Any, *values: str) -> Any: ...


class RequestMetrics:
    def __init__(self, m: Collectors, tally: Tally) -> None:
        self._m = m
        self._tally = tally
        self._known: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # raw label values -> children and labels

    def started(self) -> None:
        self._tally.inc(self._m.in_flight)

    def ended(self) -> None:
        self._tally.inc(self._m.in_flight, -1.0)

    def finished(self, route: str, rec: RequestRecord, *, duration_s: float, ttft_s: float | None) -> None:
        """Everything a finished request contributes, read from its record."""
        tally = self._tally
        requests, duration, ttft, overhead, consumer, model = self._request(route, rec)
        tally.inc(requests)
        tally.observe(duration, duration_s)
        if ttft_s is not None and rec.status < 400:
            tally.observe(ttft, ttft_s)
        upstream = 0.0
        previous: str | None = None
        for a in rec.attempts:
            attempts, attempt_duration, provider = self._attempt(a.provider, a.outcome)
            tally.inc(attempts)
            tally.observe(attempt_duration, a.duration_s)
            upstream += a.duration_s
            if previous is not None and provider != previous:
                tally.inc(self._m._child(self._m.fallbacks, previous, provider))
            previous = provider
        tally.observe(overhead, max(0.0, duration_s - upstream))
        if rec.retries:
            tally.inc(self._m._child(self._m.retries, model), rec.retries)
        if rec.tokens_in or rec.tokens_out or rec.cost_usd:
            tokens_in, tokens_out, cost = self._tokens(consumer, rec.provider, model)
            tally.inc(tokens_in, rec.tokens_in)
            tally.inc(tokens_out, rec.tokens_out)
            tally.inc(cost, rec.cost_usd)

    def _request(self, route: str, rec: RequestRecord) -> tuple[Any, ...]:
        key = ("request", route, rec.status, rec.consumer, rec.model, rec.stream)
        found = self._known.get(key)
        if found is None:
            m, child = self._m, self._m._child
            consumer, model, bounded_route = m.consumer(rec.consumer), m.model(rec.model), m.route(route)
            stream = "true" if rec.stream else "false"
            found = (
                child(m.requests, bounded_route, str(rec.status), consumer, model),
                child(m.request_duration, bounded_route, consumer, model, stream),
                child(m.ttft, consumer, model, stream),
                child(m.overhead, bounded_route),
                consumer,
                model,
            )
            if (consumer, model, bounded_route) == (rec.consumer, rec.model, route):
                self._known[key] = found
        return found

    def _attempt(self, provider: str, outcome: str) -> tuple[Any, ...]:
        key = ("attempt", provider, outcome)
        found = self._known.get(key)
        if found is None:
            m = self._m
            label, word = m.provider(provider), m.word("outcome", outcome)
            found = (m._child(m.attempts, label, word), m._child(m.attempt_duration, label, word), label)
            if (label, word) == (provider, outcome):
                self._known[key] = found
        return found

    def _tokens(self, consumer: str, provider: str | None, model: str) -> tuple[Any, ...]:
        key = ("tokens", consumer, provider, model)
        found = self._known.get(key)
        if found is None:
            m = self._m
            label = m.provider(provider)
            found = (
                m._child(m.tokens, consumer, label, model, "input"),
                m._child(m.tokens, consumer, label, model, "output"),
                m._child(m.cost, consumer, label, model),
            )
            if label == provider:
                self._known[key] = found
        return found
