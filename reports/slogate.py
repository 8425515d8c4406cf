"""The SLO gate: hold each run summary to (a) its SLO error budgets, (b) its expectations, (c) its baseline.

API (what ``make slo-check`` / ``make rebaseline`` call):
- :func:`check_slo` ``(summaries, baselines) -> SloCheckResult``: ``summaries`` maps a scenario name to its
  ``summary.json`` dict, ``baselines`` a scenario name to its baseline dict. The result has ``passed``, ``rows``,
  ``table()`` (scenario, gate, figure, now, limit, verdict, note) and ``breaches()`` (one readable line per
  failing check: scenario, gate, figure, limit and the command that replays the scenario).
- :func:`load_baselines` ``(directory, names) -> {name: baseline}`` reads ``<directory>/<name>.json`` (missing
  files are left out); :func:`write_baseline` ``(name, summary, directory) -> Path`` writes one.
- CLI: ``python -m reports.slogate [--baselines DIR] [--write] RUN_DIR...`` (reads each ``summary.json``).

The three gates, every row naming its own:
- ``slo-budget``: each SLO's error budget used, in percent as report.md shows it, <= what the scenario's
  ``slo_gate.allowed_burn_pct`` allows (100 % unless the scenario breaks the SLO on purpose and says why);
- ``expectation``: each of the scenario's expectations holds;
- ``regression``: each tracked figure is no worse than the baseline by more than its tolerance
  (max(absolute, relative x |baseline|); ``slo_gate.tolerances`` overrides the absolute one). A figure the
  baseline has and the run lost (an alert that no longer fires) is a regression. A scenario with no baseline
  is ``new``: gates (a) and (b) still apply, and the row names the command that records its baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

BASELINE_SCHEMA = 2
Verdict = Literal["ok", "FAIL", "new"]


def _pct(x: float) -> str:
    return f"{x:,.1f} %"


def _avail(x: float) -> str:
    return f"{100 * x:.3f} %"


def _s(x: float) -> str:
    return f"{x:.3f} s"


def _plain(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class Tracked:
    figure: str
    better: Literal["higher", "lower"]
    abs_tol: float
    rel_tol: float = 0.0
    fmt: Callable[[float], str] = _plain


TRACKED = (
    Tracked("availability", "higher", 0.002, fmt=_avail),
    Tracked("availability_budget_used_pct", "lower", 10.0, 0.1, fmt=_pct),
    Tracked("ttft_p95_s", "lower", 0.05, 0.15, fmt=_s),
    Tracked("e2e_p99_s", "lower", 0.1, 0.15, fmt=_s),
    Tracked("upstream_calls_per_request", "lower", 0.05),
    Tracked("failover_share", "higher", 0.05, fmt=_avail),
    Tracked("time_to_detect_s", "lower", 1.0, 0.25, fmt=_s),
)


@dataclass(frozen=True)
class Row:
    scenario: str
    gate: str  # slo-budget | expectation | regression | replay
    figure: str
    now: str
    limit: str
    verdict: Verdict
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict != "FAIL"


def replay_command(name: str) -> str:
    return f"make experiment SCENARIO={name}"


def rebaseline_command(name: str) -> str:
    return f"make rebaseline SCENARIO={name}"


@dataclass
class SloCheckResult:
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.passed]

    def breaches(self) -> list[str]:
        """One line per failing check: scenario, gate, figure, value, limit, and how to replay it."""
        out = []
        for r in self.failures:
            limit = f" (limit {r.limit})" if r.limit not in ("", "-") else ""
            note = f"; {r.note}" if r.note else ""
            out.append(
                f"{r.scenario}: {r.gate}: {r.figure} = {r.now}{limit}{note}; replay: {replay_command(r.scenario)}"
            )
        return out

    def table(self) -> str:
        headers = ("scenario", "gate", "figure", "now", "limit", "verdict", "note")
        body = [(r.scenario, r.gate, r.figure, r.now, r.limit, r.verdict, r.note) for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
        line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        out = [line.rstrip(), "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
        new = sorted({r.scenario for r in self.rows if r.verdict == "new"})
        out.append("")
        out += [f"new: {n} has no baseline yet; record one with `{rebaseline_command(n)}`" for n in new]
        breaches = self.breaches()
        if breaches:
            out += ["breaches:", *(f"  {b}" for b in breaches)]
        out.append("slo-check: PASS" if not breaches else f"slo-check: FAIL ({len(breaches)} failing check(s))")
        return "\n".join(out)


def _fmt(t: Tracked, x: Any) -> str:
    return "-" if x is None else t.fmt(float(x))


def budget_rows(name: str, summary: Mapping[str, Any]) -> list[Row]:
    """Gate (a): each SLO's error budget used against what the scenario allows (percent of budget)."""
    gate = summary.get("slo_gate") or {}
    reason = gate.get("reason") or ""
    rows = []
    for b in gate.get("budgets") or []:
        used, allowed = b["used_pct"], b["allowed_pct"]
        on_purpose = allowed > 100
        note = f"allowed to break: {reason}" if on_purpose and reason else ""
        if not b["held"]:
            note = f"burned more than allowed by {used - allowed:,.1f} percentage points" + (
                f" ({note})" if note else ""
            )
        rows.append(
            Row(
                name,
                "slo-budget",
                f"{b['title']}: error budget used",
                "n/a (no events)" if used is None else _pct(used),
                f"<= {_pct(allowed)}",
                "ok" if b["held"] else "FAIL",
                note,
            )
        )
    return rows


def expectation_rows(name: str, summary: Mapping[str, Any]) -> list[Row]:
    """Gate (b): every expectation holds."""
    return [
        Row(
            name,
            "expectation",
            e["expectation"],
            "-" if e["figure"] is None else f"{e['figure']:.4g}",
            "held",
            "ok" if e["held"] else "FAIL",
            "" if e["held"] else f"broken: {e['detail']}",
        )
        for e in summary.get("expectations") or []
    ]


def _regression(t: Tracked, base: Any, now: Any, abs_override: float | None) -> tuple[str, Verdict, str]:
    """(limit text, verdict, note) of one tracked figure against its baseline value."""
    if base is None:
        return "-", "ok", "" if now is None else "no baseline value for this figure yet"
    tol = max(abs_override if abs_override is not None else t.abs_tol, t.rel_tol * abs(base))
    bound = max(0.0, base - tol) if t.better == "higher" else base + tol
    limit = f"{'>=' if t.better == 'higher' else '<='} {t.fmt(bound)} (baseline {t.fmt(base)})"
    if now is None:
        lost = " (the alert no longer fires)" if t.figure == "time_to_detect_s" else ""
        return limit, "FAIL", f"the baseline has this figure and the run has none{lost}"
    worse = (base - now) if t.better == "higher" else (now - base)
    if worse > tol + 1e-12:
        return limit, "FAIL", f"worse than baseline by {t.fmt(worse)} (tolerance {t.fmt(tol)})"
    return limit, "ok", ""


def regression_rows(name: str, summary: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[Row]:
    """Gate (c): tracked figures against the baseline; a scenario without one is ``new``."""
    if baseline is None:
        return [
            Row(name, "regression", "baseline", "-", "-", "new", f"no baseline; record one: {rebaseline_command(name)}")
        ]
    figures = summary.get("figures") or {}
    base_figures = baseline.get("figures") or {}
    tolerances = (summary.get("slo_gate") or {}).get("tolerances") or {}
    rows = []
    for t in TRACKED:
        now, base = figures.get(t.figure), base_figures.get(t.figure)
        if now is None and base is None:
            continue
        limit, verdict, note = _regression(t, base, now, tolerances.get(t.figure))
        rows.append(Row(name, "regression", t.figure, _fmt(t, now), limit, verdict, note))
    return rows


def check_scenario(name: str, summary: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[Row]:
    return [
        *budget_rows(name, summary),
        *expectation_rows(name, summary),
        *regression_rows(name, summary, baseline),
    ]


def check_slo(summaries: Mapping[str, Mapping[str, Any]], baselines: Mapping[str, Mapping[str, Any]]) -> SloCheckResult:
    """Check every scenario's summary; see the module docstring."""
    result = SloCheckResult()
    for name in sorted(summaries):
        result.rows += check_scenario(name, summaries[name], baselines.get(name))
    return result


def baseline_of(name: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    figures = summary.get("figures") or {}
    return {
        "schema": BASELINE_SCHEMA,
        "scenario": name,
        "figures": {t.figure: figures.get(t.figure) for t in TRACKED},
    }


def write_baseline(name: str, summary: Mapping[str, Any], directory: Path) -> Path:
    """Write ``<directory>/<name>.json`` from a run summary (stable bytes: sorted keys, 2-space indent)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(baseline_of(name, summary), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_baselines(directory: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names:
        path = directory / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def load_summaries(run_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``{scenario name: summary}`` from each run dir's ``summary.json``."""
    out = {}
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        out[summary["scenario"]["name"]] = summary
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.slogate", description="the SLO gate over run summaries")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--baselines", type=Path, default=Path("experiments/baselines"))
    parser.add_argument("--write", action="store_true", help="write the baselines instead of checking")
    args = parser.parse_args(argv)
    summaries = load_summaries(args.run_dirs)
    if args.write:
        for name, summary in sorted(summaries.items()):
            print(f"wrote {write_baseline(name, summary, args.baselines)}")
        return 0
    result = check_slo(summaries, load_baselines(args.baselines, summaries))
    print(result.table())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
