"""Run directories: ``runs/<scenario>-<id>/`` and the files every run leaves there.

* ``requests.jsonl`` — the gateway's request log (the reports' input);
* ``events.jsonl`` — breaker transitions and other gateway events (``from``/``to`` as the reports read them),
  plus the runner's own ``fault_start``/``fault_end``/``phase`` lines;
* ``resolved_scenario.json`` — the scenario after scaling, with every fault listed;
* ``run.json`` — mode, seed, scale, ``started_at`` (the time origin), SHA-256 of the request log (replay);
* ``gateway.yaml`` — the gateway configuration used; ``gateway.log``, ``sim-<upstream>.log`` — process logs;
* real time only: ``locust_*.csv``, ``locust.html``, ``metrics/*.prom`` snapshots.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

RUNS_DIR = Path("runs")


def new_run_dir(scenario: str, run_id: str, root: Path = RUNS_DIR) -> Path:
    """``root/<scenario>-<run_id>``; a suffix keeps an existing directory intact."""
    base = root / f"{scenario}-{run_id}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    path.mkdir(parents=True)
    return path


def write_json(path: Path, value: Any) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    if path.exists():
        h.update(path.read_bytes())
    return h.hexdigest()


def events_from_log(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """Event lines of the gateway's JSON log (not the per-request lines), normalised for the reports."""
    out = []
    for line in lines:
        line = line.strip()
        if not line or line[:1] not in (b"{", "{"):
            continue
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(ev, dict) or ev.get("event") in (None, "request", "log"):
            continue
        if ev.get("event") == "breaker_transition":
            ev.setdefault("from", ev.get("from_state"))
            ev.setdefault("to", ev.get("to_state"))
        out.append(ev)
    return out


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> int:
    rows = sorted(events, key=lambda e: (float(e.get("ts") or 0.0), str(e.get("event"))))
    path.write_bytes(b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in rows))
    return len(rows)


def timeline_events(resolved: dict[str, Any], started_at: float) -> list[dict[str, Any]]:
    """The runner's own events: fault windows and load phases, on the run's clock."""
    out: list[dict[str, Any]] = []
    for f in resolved.get("faults", []):
        out.append({"event": "fault_start", "ts": started_at + f["start_s"], **_fault(f)})
        if f.get("end_s") is not None:
            out.append({"event": "fault_end", "ts": started_at + f["end_s"], **_fault(f)})
    phases = resolved.get("load", {}).get("phases", [])
    out.extend({"event": "phase", "ts": started_at + ph["start_s"], "phase": ph["name"]} for ph in phases)
    return out


def _fault(f: dict[str, Any]) -> dict[str, Any]:
    return {"upstream": f["upstream"], "kind": f["kind"]}


def generate_report(run_dir: Path, *, charts: bool = True) -> int:
    """``python -m reports RUN_DIR`` in a child process (matplotlib stays out of the runner)."""
    cmd = [sys.executable, "-m", "reports", str(run_dir)]
    if not charts:
        cmd.append("--no-charts")
    return subprocess.call(cmd)
