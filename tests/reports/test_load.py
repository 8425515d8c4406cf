"""Parsing the request log: time origin, derived columns, tolerance of missing optional fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from reports.load import from_lines, load_run
from tests.reports.factory import T0, attempt, lines, rec


def test_time_origin_defaults_to_first_arrival_and_run_json_overrides() -> None:
    recs = [rec("a", 5.0, "ok", ttft=0.25, e2e=1.5), rec("b", 7.0, "ok")]
    run = from_lines(lines(recs))
    assert run.t0 == T0 + 5.0 and run.requests["t"].to_list() == [0.0, 2.0]
    run = from_lines(lines(recs), meta={"started_at": T0})
    assert run.requests["t"].to_list() == [5.0, 7.0]
    assert run.requests["ttft_s"][0] == pytest.approx(0.25) and run.requests["e2e_s"][0] == pytest.approx(1.5)


def test_minimal_records_and_derived_columns() -> None:
    minimal = {"request_id": "m", "ts_arrival": T0, "outcome": "error"}
    full = rec(
        "f",
        1,
        "ok",
        provider="vllm",
        attempts=[attempt("openai", 1, "breaker_open", None), attempt("vllm", 1)],
        decisions={"shed": None, "pinned": True, "chaos": ["abort", {"kind": "latency"}]},
    )
    run = from_lines([orjson.dumps(minimal), b"", orjson.dumps(full)], meta={"started_at": T0})
    r = run.requests.to_dicts()
    assert r[0]["n_attempts"] == 0 and r[0]["ttft_s"] is None and r[0]["t_end"] == 0.0
    assert (r[1]["first_provider"], r[1]["first_outcome"], r[1]["n_attempts"], r[1]["n_calls"]) == (
        "openai",
        "breaker_open",
        2,
        1,
    )
    assert r[1]["pinned"] and r[1]["chaos"] == "abort|latency" and r[1]["shed_reason"] is None
    assert run.attempts["request_id"].to_list() == ["f", "f"] and run.attempts["t"].to_list() == [1.0, 1.0]


def test_load_run_reads_the_directory(tmp_path: Path) -> None:
    (tmp_path / "requests.jsonl").write_bytes(b"\n".join(lines([rec("a", 1, "ok")])))
    run = load_run(tmp_path)
    assert run.requests.height == 1 and run.scenario == {} and run.transitions.height == 0


def test_breaker_transitions_of_several_workers_merge_into_one_timeline() -> None:
    """Each worker logs the changes it sees; the report keeps each change once, and a no-op line never."""
    from tests.reports.factory import T0, lines, rec

    def tr(t: float, a: str, b: str) -> dict[str, Any]:
        return {"ts": T0 + t, "event": "breaker_transition", "provider": "openai", "from": a, "to": b}

    worker_a = [tr(10.0, "closed", "open"), tr(20.0, "open", "half_open"), tr(20.5, "half_open", "closed")]
    worker_b = [tr(10.2, "closed", "open"), tr(12.0, "open", "open"), tr(20.1, "open", "half_open")]
    worker_b += [tr(20.6, "half_open", "closed")]
    noop = {**tr(5.0, "open", "open"), "provider": "vllm"}  # a worker adopting a state it already had
    events = sorted([*worker_a, *worker_b, noop], key=lambda e: e["ts"])
    run = from_lines(lines([rec("a", 1.0)]), lines(events), {}, {"started_at": T0})
    merged = run.transitions.select("t", "from", "to").rows()
    assert merged == [(10.0, "closed", "open"), (20.0, "open", "half_open"), (20.5, "half_open", "closed")]
