"""Read a run directory into polars frames.

Inputs (all in the run directory):
- ``requests.jsonl``: one ``gateway.requestrecord.RequestRecord.to_dict()`` per line (schema 1);
- ``events.jsonl`` (optional): ``{"event": "breaker_transition", "ts", "provider", "from", "to"}`` lines
  (``from_state``/``to_state`` and a ``provider/model`` breaker key are accepted). When the file has any, they
  are the breaker history; otherwise the transitions noted on request records are used
  (``decisions.breaker_transitions`` or the router's ``decisions.breaker``, timed at the request's arrival when
  they carry no ``ts``). A repeated change (same provider, same target state in a row) is kept once and a
  no-op line (``open -> open``) dropped: several workers' logs merge into one timeline;
- ``resolved_scenario.json`` (optional): the scenario dict;
- ``run.json`` (optional): run metadata; ``started_at`` (epoch s) sets the time origin, ``mode`` is shown.

Every time in the frames is relative to the run's time origin ``t0`` (seconds): ``run.json`` ``started_at``, else
the scenario's ``started_at``, else the first arrival. Records are parsed once with orjson; everything after
that is vectorised polars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

# Attempt outcomes that are not upstream calls: the gateway skipped the provider without contacting it.
NOT_A_CALL = ("breaker_open", "shed")
TAG_SEP = "|"

REQUEST_SCHEMA: dict[str, Any] = {
    "request_id": pl.String,
    "run_id": pl.String,
    "consumer": pl.String,
    "priority": pl.Int64,
    "model": pl.String,
    "stream": pl.Boolean,
    "ts_arrival": pl.Float64,
    "ts_first_byte": pl.Float64,
    "ts_end": pl.Float64,
    "status": pl.Int64,
    "outcome": pl.String,
    "error_type": pl.String,
    "provider": pl.String,
    "retries": pl.Int64,
    "tokens_in": pl.Int64,
    "tokens_out": pl.Int64,
    "cost_usd": pl.Float64,
    "first_provider": pl.String,
    "first_outcome": pl.String,
    "n_attempts": pl.Int64,
    "n_calls": pl.Int64,
    "n_injected": pl.Int64,
    "shed_reason": pl.String,
    "quota_limit": pl.String,
    "pinned": pl.Boolean,
    "retry_budget_exhausted": pl.Boolean,
    "chaos": pl.String,  # tags joined by TAG_SEP, null when none
    "guardrail": pl.String,
}
ATTEMPT_SCHEMA: dict[str, Any] = {
    "request_id": pl.String,
    "idx": pl.Int64,
    "provider": pl.String,
    "model": pl.String,
    "started": pl.Float64,
    "duration_s": pl.Float64,
    "outcome": pl.String,
    "status": pl.Int64,
    "injected": pl.Boolean,
}
TRANSITION_SCHEMA: dict[str, Any] = {"provider": pl.String, "from": pl.String, "to": pl.String, "ts": pl.Float64}


@dataclass
class RunData:
    """A run, as frames. Times in ``t``-style columns are seconds since ``t0``."""

    requests: pl.DataFrame
    attempts: pl.DataFrame
    transitions: pl.DataFrame
    scenario: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    t0: float = 0.0


def _tag(item: Any) -> str:
    """A chaos/guardrail decision entry as a short tag (its kind, rule or action)."""
    if isinstance(item, dict):
        for key in ("kind", "fault", "rule", "action", "type", "name"):
            if item.get(key) is not None:
                return str(item[key])
        return "other"
    return str(item)


def _tags(value: Any) -> str | None:
    """Chaos/guardrail decisions as one string of tags joined by ``TAG_SEP`` (cheaper than list columns)."""
    if not value:
        return None
    items = value if isinstance(value, list) else [value]
    return TAG_SEP.join(_tag(v).replace(TAG_SEP, "/") for v in items) or None


def parse_records(lines: list[bytes]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Request records (JSON lines) -> (requests, attempts, transitions) frames with absolute epoch times."""
    recs = [orjson.loads(line) for line in lines if line.strip()]
    plain = {n: t for n, t in REQUEST_SCHEMA.items() if n in _PLAIN}
    requests = pl.from_dicts(recs, schema=plain) if recs else pl.DataFrame(schema=plain)
    requests = requests.with_row_index("_row")
    att_rows = [(i, j) for i, r in enumerate(recs) for j in range(len(r.get("attempts") or ()))]
    att_dicts = [a for r in recs for a in r.get("attempts") or ()]
    att_schema = {n: t for n, t in ATTEMPT_SCHEMA.items() if n not in ("request_id", "idx")}
    attempts = pl.from_dicts(att_dicts, schema=att_schema) if att_dicts else pl.DataFrame(schema=att_schema)
    attempts = attempts.with_columns(
        _row=pl.Series([i for i, _ in att_rows], dtype=pl.UInt32),
        idx=pl.Series([j for _, j in att_rows], dtype=pl.Int64),
        injected=pl.col("injected").fill_null(False),
    )
    per_request = (
        attempts.sort("_row", "idx")
        .group_by("_row")
        .agg(
            _att_provider=pl.col("provider").first(),
            _att_outcome=pl.col("outcome").first(),
            n_attempts=pl.len().cast(pl.Int64),
            n_calls=(~pl.col("outcome").is_in(NOT_A_CALL)).sum().cast(pl.Int64),
            n_injected=pl.col("injected").sum().cast(pl.Int64),
        )
    )
    ds = [r.get("decisions") or {} for r in recs]
    decisions = pl.DataFrame(
        {
            "shed_reason": [None if d.get("shed") in (None, False) else str(d["shed"]) for d in ds],
            "quota_limit": [_quota_limit(d.get("quota")) for d in ds],
            "pinned": [bool(d.get("pinned")) for d in ds],
            "retry_budget_exhausted": [bool(d.get("retry_budget_exhausted")) for d in ds],
            "chaos": [_tags(d.get("chaos")) for d in ds],
            "guardrail": [_tags(d.get("guardrail")) for d in ds],
        },
        schema={n: REQUEST_SCHEMA[n] for n in _DECISIONS},
    )
    skipped_first = pl.DataFrame(
        [_skipped_first(d) for d in ds], schema={"_skip_provider": pl.String, "_skip_reason": pl.String}, orient="row"
    )
    requests = (
        pl.concat([requests, decisions, skipped_first], how="horizontal")
        .join(per_request, on="_row", how="left")
        .with_columns([pl.col(c).fill_null(0) for c in ("n_attempts", "n_calls", "n_injected")])
        .with_columns(
            first_provider=pl.coalesce("_skip_provider", "_att_provider"),
            first_outcome=pl.coalesce("_skip_reason", "_att_outcome"),
        )
    )
    attempts = attempts.join(requests.select("_row", "request_id"), on="_row", how="left")
    trs = [_transition(tr, r.get("ts_arrival")) for r, d in zip(recs, ds, strict=True) for tr in _record_transitions(d)]
    transitions = pl.from_dicts(trs, schema=TRANSITION_SCHEMA) if trs else pl.DataFrame(schema=TRANSITION_SCHEMA)
    return (
        # Ignored on the next line: a dict[str, Any] of polars dtypes
        requests.select(REQUEST_SCHEMA.keys()).cast(REQUEST_SCHEMA),  # type: ignore[arg-type]
        # Ignored on the next line: a dict[str, Any] of polars dtypes
        attempts.select(ATTEMPT_SCHEMA.keys()).cast(ATTEMPT_SCHEMA),  # type: ignore[arg-type]
        transitions,
    )


def _quota_limit(q: Any) -> str | None:
    """``decisions.quota``: a limit name, or the gateway's ``{"decision": kind, ...}`` dict."""
    if isinstance(q, dict):
        value = q.get("limit") or q.get("decision")
        return None if value is None else str(value)
    return None if q in (None, False) else str(q)


def _skipped_first(d: dict[str, Any]) -> tuple[str | None, str | None]:
    """The first-choice provider and why it was skipped, when the router skipped it without a call.

    The router records its order in ``decisions.route.order`` and skipped providers in ``decisions.skipped``
    (``{provider: "breaker_open" | "insufficient_quota" | "breaker_probing"}``); a skipped first choice counts
    as a failed first attempt for the failover figures.
    """
    skipped = d.get("skipped")
    if not isinstance(skipped, dict) or not skipped:
        return None, None
    pinned = d.get("pinned")
    order = (d.get("route") or {}).get("order") or []
    first = pinned if isinstance(pinned, str) else (order[0] if order else None)
    if first is None or first not in skipped:
        return None, None
    return str(first), str(skipped[first])


def _record_transitions(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = [tr for tr in d.get("breaker_transitions") or () if isinstance(tr, dict)]
    return out + [tr for tr in d.get("breaker") or () if isinstance(tr, dict)]


def _transition(tr: dict[str, Any], ts_default: Any) -> dict[str, Any]:
    """One transition, normalised: provider from ``provider`` or the breaker ``key`` (``provider/model``),
    states from ``from``/``to`` or ``from_state``/``to_state``, time from ``ts`` or the request's arrival."""
    provider = tr.get("provider") or tr.get("key")
    return {
        "provider": None if provider is None else str(provider).split("/", 1)[0],
        "from": tr.get("from", tr.get("from_state")),
        "to": tr.get("to", tr.get("to_state")),
        "ts": tr.get("ts", ts_default),
    }


_DECISIONS = ("shed_reason", "quota_limit", "pinned", "retry_budget_exhausted", "chaos", "guardrail")

_PLAIN = frozenset(
    [
        "request_id",
        "run_id",
        "consumer",
        "priority",
        "model",
        "stream",
        "ts_arrival",
        "ts_first_byte",
        "ts_end",
        "status",
        "outcome",
        "error_type",
        "provider",
        "retries",
        "tokens_in",
        "tokens_out",
        "cost_usd",
    ]
)


def parse_events(lines: list[bytes]) -> pl.DataFrame:
    """Breaker transitions from an events JSONL (other events are ignored)."""
    tcols: dict[str, list[Any]] = {name: [] for name in TRANSITION_SCHEMA}
    for line in lines:
        if not line.strip():
            continue
        ev = orjson.loads(line)
        if ev.get("event") != "breaker_transition":
            continue
        tr = _transition(ev, None)
        for name in TRANSITION_SCHEMA:
            tcols[name].append(tr[name])
    return pl.DataFrame(tcols, schema=TRANSITION_SCHEMA)


def _read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    value = orjson.loads(path.read_bytes())
    return value if isinstance(value, dict) else {}


def relativise(
    requests: pl.DataFrame, attempts: pl.DataFrame, transitions: pl.DataFrame, t0: float
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Add run-relative times: ``t`` (arrival), ``t_end``, ``ttft_s``, ``e2e_s``; sort everything by time."""
    requests = requests.with_columns(
        t=pl.col("ts_arrival") - t0,
        t_end=pl.coalesce("ts_end", "ts_arrival") - t0,
        ttft_s=pl.col("ts_first_byte") - pl.col("ts_arrival"),
        e2e_s=pl.col("ts_end") - pl.col("ts_arrival"),
    ).sort("t", "request_id")
    attempts = attempts.with_columns(t=pl.col("started") - t0).sort("t", "request_id", "idx")
    transitions = (
        transitions.drop_nulls(["provider", "to", "ts"])
        .filter(pl.col("from").is_null() | (pl.col("from") != pl.col("to")))  # "open -> open": no change
        .with_columns(t=pl.col("ts") - t0)
        .sort("provider", "t", maintain_order=True)
        # the same change seen twice (two workers, or the request log and the events file) is kept once
        .filter(pl.col("to") != pl.col("to").shift(1).over("provider").fill_null(""))
        .sort("t", "provider", maintain_order=True)
    )
    return requests, attempts, transitions


def from_lines(
    request_lines: list[bytes],
    event_lines: list[bytes] | None = None,
    scenario: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> RunData:
    """Build :class:`RunData` from raw JSON lines (what tests use)."""
    scenario = scenario or {}
    meta = meta or {}
    requests, attempts, transitions = parse_records(request_lines)
    events = parse_events(event_lines or [])
    if events.height:  # timestamped by the gateway: preferred over the transitions noted on request records
        transitions = events
    started = meta.get("started_at", scenario.get("started_at"))
    if started is not None:
        t0 = float(started)
    elif requests.height:
        t0 = float(requests["ts_arrival"].min())  # type: ignore[arg-type]  # polars types min()/max() as any literal
    else:
        t0 = 0.0
    requests, attempts, transitions = relativise(requests, attempts, transitions, t0)
    return RunData(requests, attempts, transitions, scenario, meta, t0)


def load_run(run_dir: Path, *, database_url: str | None = None) -> RunData:
    """Read a run directory (see the module docstring); with ``database_url``, the request records come from the
    gateway's database (reports/database.py) instead of ``requests.jsonl``."""
    meta = _read_json(run_dir / "run.json")
    if database_url is not None:
        from reports.database import request_lines

        run_id = meta.get("run_id")
        if not isinstance(run_id, str):
            raise ValueError(f"{run_dir}: run.json names no run_id to read from the database")
        lines = request_lines(database_url, run_id)
    else:
        lines = _read_lines(run_dir / "requests.jsonl")
    return from_lines(
        lines,
        _read_lines(run_dir / "events.jsonl"),
        _read_json(run_dir / "resolved_scenario.json"),
        meta,
    )
