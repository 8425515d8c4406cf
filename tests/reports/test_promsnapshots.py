"""Prometheus snapshots of a real-time run: counters from the final snapshot, gauge extremes over all."""

from __future__ import annotations

from pathlib import Path

from gateway.observability.metrics import Metrics
from reports.build import build
from reports.promsnapshots import metrics_summary
from tests.reports.factory import rec, write_run

SNAPSHOT = """\
# HELP faultline_requests_total Client requests answered.
# TYPE faultline_requests_total counter
faultline_requests_total{{route="chat",status="200",consumer="app",model="m"}} {ok}
faultline_requests_total{{route="chat",status="503",consumer="app",model="m"}} {failed}
# HELP faultline_upstream_attempts_total Upstream attempts by outcome.
# TYPE faultline_upstream_attempts_total counter
faultline_upstream_attempts_total{{provider="openai",outcome="ok"}} {ok}
faultline_upstream_attempts_total{{provider="openai",outcome="server_error"}} 4.0
faultline_upstream_attempts_total{{provider="vllm",outcome="ok"}} 2.0
# HELP faultline_shed_requests_total Requests shed, by reason.
# TYPE faultline_shed_requests_total counter
faultline_shed_requests_total{{reason="queue_full"}} 3.0
# HELP faultline_breaker_transitions_total Circuit breaker state changes.
# TYPE faultline_breaker_transitions_total counter
faultline_breaker_transitions_total{{provider="openai",from_state="closed",to_state="open"}} 1.0
# HELP faultline_cost_usd_total Estimated cost in US dollars.
# TYPE faultline_cost_usd_total counter
faultline_cost_usd_total{{consumer="app",provider="openai",model="m"}} 0.25
# HELP faultline_requests_in_flight Requests being served.
# TYPE faultline_requests_in_flight gauge
faultline_requests_in_flight {in_flight}
# HELP faultline_state_store_up 1 while the state store answers.
# TYPE faultline_state_store_up gauge
faultline_state_store_up {up}
"""


def _write(run_dir: Path, name: str, ok: int, failed: int, in_flight: int, up: int) -> None:
    (run_dir / "metrics").mkdir(exist_ok=True)
    text = SNAPSHOT.format(ok=ok, failed=failed, in_flight=in_flight, up=up)
    (run_dir / "metrics" / name).write_text(text)


def test_counters_from_final_and_gauge_extremes_over_snapshots(tmp_path: Path) -> None:
    _write(tmp_path, "t0000.0.prom", 0, 0, 0, 1)
    _write(tmp_path, "t0005.0.prom", 5, 1, 7, 0)
    _write(tmp_path, "t0010.0.prom", 9, 1, 2, 1)
    _write(tmp_path, "final.prom", 10, 1, 0, 1)
    m = metrics_summary(tmp_path)
    assert m is not None
    assert m["source"] == "final.prom" and m["snapshots"] == 3
    assert m["requests"] == 11 and m["requests_by_status"] == {"200": 10, "503": 1}
    assert m["upstream_attempts_by_outcome"] == {"ok": 12, "server_error": 4}
    assert m["shed_by_reason"] == {"queue_full": 3} and m["breaker_transitions"] == {"openai/open": 1}
    assert m["cost_usd"] == 0.25 and m["quota_rejections"] == 0
    assert (m["peak_in_flight"], m["min_state_store_up"], m["peak_queue_depth"]) == (7, 0, None)


def test_last_snapshot_stands_in_for_a_missing_final_and_no_metrics_is_none(tmp_path: Path) -> None:
    assert metrics_summary(tmp_path) is None
    _write(tmp_path, "t0002.5.prom", 3, 0, 1, 1)
    _write(tmp_path, "t0010.0.prom", 8, 2, 1, 1)
    m = metrics_summary(tmp_path)
    assert m is not None
    assert m["source"] == "t0010.0.prom" and m["requests"] == 10


def test_report_shows_metrics_next_to_the_request_log(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [rec(f"r{i}", i, "ok") for i in range(10)], {"name": "x", "duration_s": 10})
    _write(run_dir, "final.prom", 10, 1, 0, 1)
    s = build(run_dir, charts=False).summary
    assert s["metrics"] is not None and s["metrics"]["requests"] == 11
    report = (run_dir / "report.md").read_text()
    assert "## Gateway metrics (Prometheus snapshots)" in report
    assert "| client requests | 11 | 10 |" in report
    # breaker transitions: each worker counts its own, the report merges them; never called lost records
    assert "Breaker transitions differ by design" in report
    assert "| breaker transitions (see the note above) |" in report


def test_a_scrape_of_the_gateway_registry_parses(tmp_path: Path) -> None:
    m = Metrics(consumers=["app"], providers=["openai", "vllm"], models=["m"])
    for _ in range(3):
        m.shed_request("queue_full")
    m.breaker_transition("openai", "closed", "open", "failure_rate")
    m.quota_rejected("app", "tokens_per_day")
    m.chaos_injected("latency", "vllm")
    m.request_started()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "t0001.0.prom").write_bytes(m.exposition())
    m.request_ended()
    (tmp_path / "metrics" / "final.prom").write_bytes(m.exposition())
    s = metrics_summary(tmp_path)
    assert s is not None
    assert s["shed_by_reason"] == {"queue_full": 3} and s["breaker_transitions"] == {"openai/open": 1}
    assert s["quota_rejections"] == 1 and s["chaos_injections"] == {"latency": 1}
    assert (s["peak_in_flight"], s["min_state_store_up"]) == (1, 1)
