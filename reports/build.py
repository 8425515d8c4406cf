"""Regenerate every output of a run directory: summary.json, report.md, postmortem.md and the PNG charts."""

from __future__ import annotations

from pathlib import Path

import orjson

from reports.charts import render_all
from reports.load import load_run
from reports.locust import locust_summary
from reports.markdown import render_report
from reports.postmortem import render_postmortem
from reports.promsnapshots import metrics_summary
from reports.summary import Computed, compute
from reports.summary_models import Summary


def needs_postmortem(summary: Summary) -> bool:
    """Scenarios with faults get a postmortem; so does any run that broke an SLO."""
    return bool(summary["scenario"]["faults"]) or any(r["verdict"] == "broken" for r in summary["slos"])


def build(
    run_dir: Path, *, bucket_s: float | None = None, charts: bool = True, database_url: str | None = None
) -> Computed:
    """Read ``run_dir`` (its request records from ``database_url`` when given), compute, write the outputs next
    to the inputs; return the computation."""
    run = load_run(run_dir, database_url=database_url)
    run.meta["locust"] = locust_summary(run_dir)
    run.meta["metrics"] = metrics_summary(run_dir)
    computed = compute(run, bucket_s)
    summary = computed.summary
    (run_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    names = render_all(computed, run_dir) if charts else []
    (run_dir / "report.md").write_text(render_report(summary, names), encoding="utf-8")
    if needs_postmortem(summary):
        (run_dir / "postmortem.md").write_text(render_postmortem(summary, names), encoding="utf-8")
    return computed
