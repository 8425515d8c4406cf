"""The Grafana dashboard: valid JSON, covers the five areas, every query is valid PromQL (checked by promtool as
recording rules) and names only metrics the gateway exports or the SLO rules record."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import Metrics
from gateway.requestrecord import AttemptRecord, RequestRecord

from .conftest import ROOT

DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "faultline.json").read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
EXPRS = [t["expr"] for p in PANELS for t in p["targets"]]


def _exported_names() -> set[str]:
    m = Metrics(consumers=["a"], models=["m"], providers=["p", "q"])
    rec = RequestRecord("r", 0.0, consumer="a", model="m", status=200, tokens_in=1, retries=1)
    rec.attempts = [AttemptRecord("p", "m", 0.0, outcome="server_error"), AttemptRecord("q", "m", 0.0)]
    m.request_finished("/v1/chat/completions", rec, duration_s=1.0, ttft_s=0.5)
    calls: tuple[Callable[[], object], ...] = (
        lambda: m.breaker_transition("p", "closed", "open", "failure_rate"),
        lambda: m.shed_request("x"),
        lambda: m.quota_decision("a", "tokens", "redis"),
        lambda: m.guardrail_action("g", "block"),
        lambda: m.chaos_injected("latency", "p"),
        lambda: m.state_store_failure("check"),
        lambda: m.retry_budget_exhausted_for("p"),
        lambda: m.set_budget_remaining("a", 1),
    )
    for call in calls:
        call()
    names = set()
    for fam in text_string_to_metric_families(m.exposition().decode()):
        names |= {s.name for s in fam.samples}
    return names


def test_dashboard_shape() -> None:
    assert DASHBOARD["uid"] == "faultline-gateway"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    rows = {p["title"] for p in DASHBOARD["panels"] if p["type"] == "row"}
    assert rows == {"Traffic and errors", "Latency", "Saturation", "Resilience", "Error budget"}
    titles = " ".join(p["title"] for p in PANELS).lower()
    for word in ("breaker", "burn", "budget", "in flight", "first token", "overhead", "shed"):
        assert word in titles


def test_queries_name_only_exported_or_recorded_metrics() -> None:
    exported = _exported_names()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "slo-rules.yaml").read_text())["groups"]
    recorded = {r["record"] for g in rules for r in g["rules"] if "record" in r}
    for expr in EXPRS:
        for name in re.findall(r"\b(faultline_[a-z_]+|slo:[a-z_:0-9]+)", expr):
            assert name in exported or name in recorded, (name, expr)


def test_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{i}:check", "expr": e.replace("$__rate_interval", "5m")}
        for i, e in enumerate(EXPRS)
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
