"""The tally adds up to what direct prometheus_client updates write, and a registry never shows it unfolded."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.observability.metricfamilies import LATENCY_BUCKETS, OVERHEAD_BUCKETS
from gateway.observability.metrics import Metrics
from gateway.observability.requestmetrics import RequestMetrics
from gateway.observability.tally import FoldOnCollect, Tally
from gateway.requestrecord import AttemptRecord, RequestRecord
from gateway.rng import Rng

UPDATES = [0.0, 0.0001, 0.00025, 0.0003, 0.01, 0.5, 0.75, 1.0, 119.0, 120.0, 121.0, 1e9]  # bounds included


def _registry(tally: Tally | None) -> tuple[CollectorRegistry, list[Any]]:
    r = CollectorRegistry(auto_describe=True)
    if tally is not None:
        r.register(FoldOnCollect(tally))
    c = Counter("c", "c", ["k"], registry=r)
    g = Gauge("g", "g", registry=r)
    h1 = Histogram("h1", "h1", ["k"], buckets=LATENCY_BUCKETS, registry=r)
    h2 = Histogram("h2", "h2", buckets=OVERHEAD_BUCKETS, registry=r)
    return r, [c.labels("a"), c.labels("b"), g, h1.labels("a"), h2]


def _text(r: CollectorRegistry) -> str:
    return re.sub(r"(?m)^\S+_created\S* .*\n", "", generate_latest(r).decode())  # creation times differ


def test_folded_tally_writes_the_exposition_of_direct_updates() -> None:
    direct, (c1, c2, g, h1, h2) = _registry(None)
    tally = Tally()
    tallied, (t1, t2, tg, th1, th2) = _registry(tally)
    for i, v in enumerate(UPDATES):
        c1.inc()
        tally.inc(t1)
        c2.inc(v)
        tally.inc(t2, v)
        g.inc()
        tally.inc(tg)
        if i % 3 == 0:
            g.dec()
            tally.inc(tg, -1.0)
        h1.observe(v)
        tally.observe(th1, v)
        h2.observe(v)
        tally.observe(th2, v)
    assert _text(tallied) == _text(direct)
    assert _text(tallied) == _text(direct)  # folded once: a second collection adds nothing


def test_a_counter_refuses_a_negative_amount_as_prometheus_client_does() -> None:
    _, (counter, *_rest) = _registry(None)
    with pytest.raises(ValueError):
        Tally().inc(counter, -1.0)


def test_a_direct_tally_updates_at_once() -> None:
    r, (c1, *_rest) = _registry(None)
    Tally(direct=True).inc(c1, 2.0)
    assert r.get_sample_value("c_total", {"k": "a"}) == 2.0


def test_request_metrics_read_without_a_scrape_are_folded() -> None:
    m = Metrics(consumers=["alice"], models=["m"], providers=["p", "q"])
    attempts = [AttemptRecord("p", "m", 1.0, 0.2, "timeout"), AttemptRecord("q", "m", 1.2, 0.1)]
    rec = RequestRecord("r", 1.0, consumer="alice", model="m", status=200, attempts=attempts, retries=1)
    rec.tokens_in, rec.tokens_out, rec.provider = 9, 2, "q"
    for _ in range(3):
        m.request_started()
        m.request_finished("/v1/chat/completions", rec, duration_s=0.5, ttft_s=0.4)
    m.request_ended()
    labels = {"route": "/v1/chat/completions", "status": "200", "consumer": "alice", "model": "m"}
    assert m.registry.get_sample_value("faultline_requests_total", labels) == 3
    assert m.registry.get_sample_value("faultline_requests_in_flight", {}) == 2
    assert m.registry.get_sample_value("faultline_fallbacks_total", {"from_provider": "p", "to_provider": "q"}) == 3
    tokens = {"consumer": "alice", "provider": "q", "model": "m", "type": "input"}
    assert m.registry.get_sample_value("faultline_tokens_total", tokens) == 27
    assert (
        m.registry.get_sample_value("faultline_upstream_attempts_total", {"provider": "p", "outcome": "timeout"}) == 3
    )
    unknown = RequestRecord("r", 1.0, consumer="mallory", model="m", status=401)
    m.request_finished("/v1/chat/completions", unknown, duration_s=0.01, ttft_s=None)
    labels = {**labels, "status": "401", "consumer": "unknown"}
    assert m.registry.get_sample_value("faultline_requests_total", labels) == 1


def _direct_metrics() -> Metrics:
    """Metrics whose request updates go straight to the children (as in multi-process mode)."""
    m = Metrics(consumers=["alice"], models=["m"], providers=["p", "q"])
    m._tally.direct = True
    m._per_request = RequestMetrics(m, m._tally)
    return m


# Sums of these are exact whatever the order (a scrape in between adds a tallied sum to the child's in one step)
EXACT = [0.0, 2.0**-10, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 120.0, 121.0, 2.0**20]


def test_request_metrics_added_in_place_write_the_exposition_of_direct_updates() -> None:
    """Requests of every shape (known and unknown labels, fallbacks, retries, tokens, streams, errors), with
    scrapes in between (the running values are zeroed, not replaced, and the hot path keeps adding to them)."""
    rng = Rng(5)
    tallied, direct = Metrics(consumers=["alice"], models=["m"], providers=["p", "q"]), _direct_metrics()
    for i in range(400):
        attempts = [AttemptRecord(rng.choice("pqx"), "m", 1.0, rng.choice(EXACT), rng.choice(["ok", "timeout"]))]
        if rng.random() < 0.3:
            attempts.append(AttemptRecord(rng.choice("pq"), "m", 1.5, rng.choice(EXACT)))
        rec = RequestRecord(
            f"r{i}",
            1.0,
            consumer=rng.choice(["alice", "mallory", None]),
            model=rng.choice(["m", "other"]),
            stream=rng.random() < 0.5,
            status=rng.choice([200, 200, 429, 503]),
            attempts=attempts,
            retries=len(attempts) - 1,
            provider=attempts[-1].provider,
            tokens_in=rng.randrange(3),
            tokens_out=rng.randrange(3),
            cost_usd=rng.choice([0.0, 2.0**-20]),
        )
        duration, ttft = rng.choice(EXACT), rng.choice([None, rng.choice(EXACT)])
        route = rng.choice(["/v1/chat/completions", "/v1/embeddings", "/elsewhere"])
        for m in (tallied, direct):
            m.request_started()
            m.request_finished(route, rec, duration_s=duration, ttft_s=ttft)
            if i % 4:
                m.request_ended()
        if i % 97 == 0:
            assert _text(tallied.registry) == _text(direct.registry)
    assert _text(tallied.registry) == _text(direct.registry)
    assert _text(tallied.registry) == _text(direct.registry)  # folded once: a second collection adds nothing


def test_a_tallied_gauge_shows_its_last_value_set_at_a_scrape() -> None:
    direct, (_c1, _c2, g, _h1, _h2) = _registry(None)
    tally = Tally()
    tallied, (_t1, _t2, tg, _th1, _th2) = _registry(tally)
    for v in UPDATES:
        g.set(v)
        tally.set(tg, v)
        g.set(-v)
        tally.set(tg, -v)
        assert _text(tallied) == _text(direct)
    g.inc(3.0)
    tally.inc(tg, 3.0)  # an increment after a tallied set is folded after it
    assert _text(tallied) == _text(direct)


def _budgeted(direct: bool) -> Metrics:
    m = Metrics(consumers=["alice", "bob"], daily_budgets={"alice": 1000, "bob": 500, "mallory": 50})
    m._tally.direct = direct
    return m


def test_quota_decisions_and_remaining_budgets_write_the_exposition_of_direct_updates() -> None:
    """Decisions of every kind and backend (known and bounded labels), remaining budgets from requests and set
    directly, scrapes in between: at each scrape the gauge holds the last value set, as with direct updates."""
    rng = Rng(11)
    tallied, direct = _budgeted(False), _budgeted(True)
    kinds = ["ok", "ok", "rpm", "day", "concurrency", "", *(f"k{i}" for i in range(40))]
    for i in range(600):
        consumer = rng.choice(["alice", "bob", "mallory", None])
        kind, backend = rng.choice(kinds), rng.choice(["redis", "memory", "fail_open"])
        quota = {"decision": kind, "reserved": rng.randrange(60), "day_used": rng.randrange(1200)}
        if rng.random() < 0.6:
            quota["charged"] = rng.randrange(60)
        rec = RequestRecord(f"r{i}", 1.0, consumer=consumer or "alice", model="m", status=200)
        rec.decisions["quota"] = quota
        for m in (tallied, direct):
            m.quota_decision(consumer, kind, backend)
            m.request_finished("/v1/chat/completions", rec, duration_s=0.5, ttft_s=None)
            if i % 7 == 0:
                m.set_budget_remaining("alice" if i % 2 else "mallory", float(i))
        if i % 53 == 0:
            assert _text(tallied.registry) == _text(direct.registry)
    assert _text(tallied.registry) == _text(direct.registry)
    assert _text(tallied.registry) == _text(direct.registry)
