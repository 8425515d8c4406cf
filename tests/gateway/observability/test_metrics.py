from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import OTHER, UNKNOWN, Metrics, _Bounded
from gateway.requestrecord import AttemptRecord, RequestRecord

from .conftest import promtool


def _metrics() -> Metrics:
    return Metrics(consumers=["alice"], models=["gpt-4o-mini"], providers=["openai-sim", "vllm-sim"])


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _record(**kw: object) -> RequestRecord:
    rec = RequestRecord(request_id="req_1", ts_arrival=100.0, consumer="alice", model="gpt-4o-mini", status=200)
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


def test_bounded_labels_fixed_vocabulary_and_first_seen_limit() -> None:
    fixed = _Bounded(["a"], fallback=UNKNOWN)
    assert [fixed("a"), fixed("b"), fixed(None)] == ["a", UNKNOWN, UNKNOWN]
    open_ = _Bounded(limit=2)
    assert [open_("x"), open_("y"), open_("z"), open_("x")] == ["x", "y", OTHER, "x"]


def test_request_finished_counts_request_attempts_fallback_tokens_and_overhead() -> None:
    m = _metrics()
    rec = _record(
        provider="vllm-sim",
        retries=1,
        tokens_in=10,
        tokens_out=20,
        cost_usd=0.5,
        attempts=[
            AttemptRecord("openai-sim", "gpt-4o-mini", 100.0, duration_s=0.25, outcome="server_error", status=500),
            AttemptRecord("vllm-sim", "llama", 100.25, duration_s=0.5, outcome="ok", status=200),
        ],
    )
    m.request_finished("/v1/chat/completions", rec, duration_s=1.0, ttft_s=0.95)
    s = _samples(m)
    req = (("consumer", "alice"), ("model", "gpt-4o-mini"), ("route", "/v1/chat/completions"), ("status", "200"))
    assert s[("faultline_requests_total", req)] == 1
    assert s[("faultline_upstream_attempts_total", (("outcome", "server_error"), ("provider", "openai-sim")))] == 1
    assert s[("faultline_fallbacks_total", (("from_provider", "openai-sim"), ("to_provider", "vllm-sim")))] == 1
    assert s[("faultline_retries_total", (("model", "gpt-4o-mini"),))] == 1
    tok = (("consumer", "alice"), ("model", "gpt-4o-mini"), ("provider", "vllm-sim"))
    assert s[("faultline_tokens_total", (*tok[:2], tok[2], ("type", "input")))] == 10
    assert s[("faultline_tokens_total", (*tok[:2], tok[2], ("type", "output")))] == 20
    assert s[("faultline_cost_usd_total", tok)] == 0.5
    # overhead = 1.0 - (0.25 + 0.5) = 0.25 s: in the 0.25 bucket, not in the 0.1 one
    assert s[("faultline_gateway_overhead_seconds_bucket", (("le", "0.25"), ("route", "/v1/chat/completions")))] == 1
    assert s[("faultline_gateway_overhead_seconds_bucket", (("le", "0.1"), ("route", "/v1/chat/completions")))] == 0
    ttft = (("consumer", "alice"), ("le", "1.0"), ("model", "gpt-4o-mini"), ("stream", "false"))
    assert s[("faultline_time_to_first_token_seconds_bucket", ttft)] == 1


def test_unconfigured_consumer_model_and_route_are_not_labels() -> None:
    m = _metrics()
    for i in range(50):
        rec = _record(consumer=f"mallory-{i}", model=f"model-{i}")
        m.request_finished(f"/v1/x{i}", rec, duration_s=0.1, ttft_s=None)
    text = m.exposition().decode()
    assert "mallory" not in text and "model-1" not in text and "/v1/x" not in text
    labels = ("consumer", UNKNOWN), ("model", UNKNOWN), ("route", OTHER), ("status", "200")
    assert _samples(m)[("faultline_requests_total", labels)] == 50


def test_events_breaker_gauge_is_one_hot_and_transitions_count() -> None:
    m = _metrics()
    m.breaker_transition("openai-sim", "closed", "open", "failure_rate")
    m.shed_request("queue_full")
    m.quota_rejected("alice", "rpm")
    m.guardrail_action("pii", "block")
    m.chaos_injected("latency", "vllm-sim")
    m.state_store_failure("check")
    m.retry_budget_exhausted_for("openai-sim")
    m.set_budget_remaining("alice", 1234)
    m.set_queue_depth(3)
    s = _samples(m)
    states = {
        st: s[("faultline_breaker_state", (("provider", "openai-sim"), ("state", st)))]
        for st in ("closed", "open", "half_open")
    }
    assert states == {"closed": 0, "open": 1, "half_open": 0}
    key = (("from_state", "closed"), ("provider", "openai-sim"), ("to_state", "open"))
    assert s[("faultline_breaker_transitions_total", key)] == 1
    assert s[("faultline_shed_requests_total", (("reason", "queue_full"),))] == 1
    assert s[("faultline_quota_rejections_total", (("consumer", "alice"), ("limit", "rpm")))] == 1
    assert s[("faultline_guardrail_actions_total", (("action", "block"), ("guardrail", "pii")))] == 1
    assert s[("faultline_chaos_injections_total", (("fault", "latency"), ("provider", "vllm-sim")))] == 1
    assert s[("faultline_state_store_failures_total", (("operation", "check"),))] == 1
    assert s[("faultline_retry_budget_exhausted_total", (("provider", "openai-sim"),))] == 1
    assert s[("faultline_consumer_budget_remaining_tokens", (("consumer", "alice"),))] == 1234
    assert s[("faultline_queue_depth", ())] == 3


def test_two_instances_share_nothing() -> None:
    a, b = _metrics(), _metrics()
    a.shed_request("x")
    assert "faultline_shed_requests_total{" in a.exposition().decode()
    assert "faultline_shed_requests_total{" not in b.exposition().decode()


def test_promtool_check_metrics_is_clean() -> None:
    tool = promtool()
    m = _metrics()
    m.request_finished(
        "/v1/chat/completions",
        _record(
            provider="openai-sim",
            tokens_in=1,
            tokens_out=2,
            cost_usd=0.1,
            attempts=[AttemptRecord("openai-sim", "gpt-4o-mini", 100.0, 0.2)],
        ),
        duration_s=0.25,
        ttft_s=0.2,
    )
    m.breaker_transition("openai-sim", "closed", "open", "failure_rate")
    m.shed_request("queue_full")
    m.quota_rejected("alice", "rpm")
    m.guardrail_action("pii", "block")
    m.chaos_injected("latency", "vllm-sim")
    m.state_store_failure("check")
    m.retry_budget_exhausted_for("openai-sim")
    m.set_budget_remaining("alice", 1)
    out = subprocess.run([tool, "check", "metrics"], input=m.exposition(), capture_output=True, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")


def test_budget_remaining_from_the_quota_decision_with_the_charge_in_place_of_the_reservation() -> None:
    m = Metrics(consumers=["alice", "bob"], models=["m"], daily_budgets={"alice": 1000})
    ok = {"decision": "ok", "reserved": 50, "day_used": 300, "charged": 20, "settled": True}
    m.request_finished("/v1/chat/completions", _record(decisions={"quota": ok}), duration_s=0.1, ttft_s=None)
    assert _samples(m)[("faultline_consumer_budget_remaining_tokens", (("consumer", "alice"),))] == 1000 - 270
    rejected = {"decision": "day", "reserved": 50, "day_used": 990}
    m.request_finished("/v1/chat/completions", _record(decisions={"quota": rejected}), duration_s=0.1, ttft_s=None)
    assert _samples(m)[("faultline_consumer_budget_remaining_tokens", (("consumer", "alice"),))] == 10
    # no daily budget, or no decision: no gauge
    m.request_finished(
        "/v1/chat/completions", _record(consumer="bob", decisions={"quota": ok}), duration_s=0.1, ttft_s=None
    )
    m.request_finished("/v1/chat/completions", _record(decisions={}), duration_s=0.1, ttft_s=None)
    assert 'consumer="bob"' not in m.exposition().decode().split("faultline_consumer_budget_remaining_tokens")[-1]
