"""What one request contributes to the metrics, tallied (gateway/observability/tally.py).

The children a finished request updates are looked up once per combination of its raw label values and kept,
only when every one of those values is a known one (a later configuration reload could give an unknown one a
name; the uncached path still resolves it every time). Unless the tally is direct (multi-process mode), what is
kept is each child's running amount or counts in the tally (``Tally.cell``, ``Tally.buckets``), added to in
place: no call per counter, one small one per histogram.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.observability.tally import Tally, observe
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
        self._direct = tally.direct
        self._known: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # raw label values -> children (cells) and labels
        self._in_flight = None if tally.direct else tally.cell(m.in_flight)

    def started(self) -> None:
        if self._in_flight is None:
            self._tally.inc(self._m.in_flight)
        else:
            self._in_flight[0] += 1.0

    def ended(self) -> None:
        if self._in_flight is None:
            self._tally.inc(self._m.in_flight, -1.0)
        else:
            self._in_flight[0] -= 1.0

    def finished(self, route: str, rec: RequestRecord, *, duration_s: float, ttft_s: float | None) -> None:
        """Everything a finished request contributes, read from its record: added in place to the running values
        of the children (or, when the tally is direct, to the children)."""
        if self._direct:
            self._finished_direct(route, rec, duration_s=duration_s, ttft_s=ttft_s)
            return
        requests, duration, ttft, overhead, consumer, model = self._request(route, rec)
        requests[0] += 1.0
        observe(duration[0], duration[1], duration_s)
        if ttft_s is not None and rec.status < 400:
            observe(ttft[0], ttft[1], ttft_s)
        upstream = 0.0
        previous: str | None = None
        for a in rec.attempts:
            attempts, attempt_duration, provider = self._attempt(a.provider, a.outcome)
            attempts[0] += 1.0
            observe(attempt_duration[0], attempt_duration[1], a.duration_s)
            upstream += a.duration_s
            if previous is not None and provider != previous:
                self._tally.inc(self._m._child(self._m.fallbacks, previous, provider))
            previous = provider
        observe(overhead[0], overhead[1], max(0.0, duration_s - upstream))
        if rec.retries:
            self._tally.inc(self._m._child(self._m.retries, model), rec.retries)
        if rec.tokens_in or rec.tokens_out or rec.cost_usd:
            cells = self._tokens(consumer, rec.provider, model)
            for cell, amount in zip(cells, (rec.tokens_in, rec.tokens_out, rec.cost_usd), strict=True):
                if amount < 0:  # refused, as prometheus_client refuses it
                    raise ValueError("Counters can only be incremented by non-negative amounts.")
                cell[0] += amount

    def _finished_direct(self, route: str, rec: RequestRecord, *, duration_s: float, ttft_s: float | None) -> None:
        """:meth:`finished` with every update straight to the child."""
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

    def _counter(self, child: Any) -> Any:
        """What the hot path updates for a counter child: the child itself, or its running amount."""
        return child if self._direct else self._tally.cell(child)

    def _histogram(self, child: Any) -> Any:
        """What the hot path updates for a histogram child: the child itself, or its running counts and bounds."""
        return child if self._direct else (self._tally.buckets(child), child._upper_bounds)

    def _request(self, route: str, rec: RequestRecord) -> tuple[Any, ...]:
        key = ("request", route, rec.status, rec.consumer, rec.model, rec.stream)
        found = self._known.get(key)
        if found is None:
            m, child = self._m, self._m._child
            consumer, model, bounded_route = m.consumer(rec.consumer), m.model(rec.model), m.route(route)
            stream = "true" if rec.stream else "false"
            found = (
                self._counter(child(m.requests, bounded_route, str(rec.status), consumer, model)),
                self._histogram(child(m.request_duration, bounded_route, consumer, model, stream)),
                self._histogram(child(m.ttft, consumer, model, stream)),
                self._histogram(child(m.overhead, bounded_route)),
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
            found = (
                self._counter(m._child(m.attempts, label, word)),
                self._histogram(m._child(m.attempt_duration, label, word)),
                label,
            )
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
                self._counter(m._child(m.tokens, consumer, label, model, "input")),
                self._counter(m._child(m.tokens, consumer, label, model, "output")),
                self._counter(m._child(m.cost, consumer, label, model)),
            )
            if label == provider:
                self._known[key] = found
        return found
