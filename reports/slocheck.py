"""CI regression on SLO budgets: check run summaries against their CI budgets, expectations and baselines.

API (what ``make slo-check`` / ``make baseline`` call):
- :func:`check_slo` ``(summaries, baselines, *, require_baseline=True) -> SloCheckResult``: ``summaries`` maps a
  scenario name to its ``summary.json`` dict, ``baselines`` maps a scenario name to its baseline dict. The result
  has ``passed``, ``rows`` and ``table()`` (a fixed-width text table: scenario, check, baseline, now, budget,
  verdict, note).
- :func:`load_baselines` ``(directory, names) -> {name: baseline}`` reads ``<directory>/<name>.json`` (missing
  files are left out).
- :func:`write_baseline` ``(name, summary, directory) -> Path`` writes ``<directory>/<name>.json``.
- CLI: ``python -m reports.slocheck [--baselines DIR] [--write] RUN_DIR...`` (reads each ``summary.json``; exit 1
  on failure).

A scenario fails when a CI budget is broken, an expectation is broken, a tracked figure is worse than its
baseline by more than its tolerance, a figure the baseline has is now missing, or (``require_baseline``) it has
no baseline. Tolerance = max(absolute, relative x |baseline|); a scenario's ``ci_budgets.tolerances`` overrides
the absolute tolerance per figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

BASELINE_SCHEMA = 1


@dataclass(frozen=True)
class Tracked:
    figure: str
    better: Literal["higher", "lower"]
    abs_tol: float
    rel_tol: float = 0.0


TRACKED = (
    Tracked("availability", "higher", 0.002),
    Tracked("error_budget_consumed", "lower", 0.1, 0.1),
    Tracked("ttft_p95_s", "lower", 0.05, 0.15),
    Tracked("e2e_p99_s", "lower", 0.1, 0.15),
    Tracked("upstream_calls_per_request", "lower", 0.05),
    Tracked("failover_share", "higher", 0.05),
    Tracked("time_to_detect_s", "lower", 1.0, 0.25),
)


@dataclass(frozen=True)
class Row:
    scenario: str
    check: str
    baseline: str
    now: str
    budget: str
    passed: bool
    note: str = ""


@dataclass
class SloCheckResult:
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.passed]

    def table(self) -> str:
        headers = ("scenario", "check", "baseline", "now", "budget", "verdict", "note")
        body = [
            (r.scenario, r.check, r.baseline, r.now, r.budget, "ok" if r.passed else "FAIL", r.note) for r in self.rows
        ]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
        line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        out = [line.rstrip(), "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
        failures = len(self.failures)
        out.append("")
        out.append("slo-check: PASS" if not failures else f"slo-check: FAIL ({failures} failing check(s))")
        return "\n".join(out)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def _budgets_by_figure(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["figure"]: b for b in summary.get("ci_budgets") or []}


def _budget_text(b: Mapping[str, Any] | None) -> str:
    if b is None:
        return "-"
    op = ">=" if b["budget"].startswith("min_") else "<="
    return f"{op} {_fmt(b['limit'])}"


def _compare(t: Tracked, base: Any, now: Any, abs_override: float | None) -> tuple[bool, str]:
    if base is None:
        return True, "" if now is None else "new figure (no baseline value)"
    if now is None:
        return False, "missing now" + (" (the alert no longer fires)" if t.figure == "time_to_detect_s" else "")
    tol = max(abs_override if abs_override is not None else t.abs_tol, t.rel_tol * abs(base))
    worse = (base - now) if t.better == "higher" else (now - base)
    if worse > tol + 1e-12:
        return False, f"worse than baseline by {worse:.4g} (tolerance {tol:.4g})"
    return True, ""


def check_scenario(
    name: str, summary: Mapping[str, Any], baseline: Mapping[str, Any] | None, *, require_baseline: bool = True
) -> list[Row]:
    rows: list[Row] = []
    figures = summary.get("figures") or {}
    budgets = _budgets_by_figure(summary)
    tolerances = summary.get("ci_tolerances") or {}
    base_figures = (baseline or {}).get("figures") or {}
    if baseline is None:
        rows.append(Row(name, "baseline", "-", "-", "-", not require_baseline, "no baseline: run `make baseline`"))
    for t in TRACKED:
        now, base, budget = figures.get(t.figure), base_figures.get(t.figure), budgets.get(t.figure)
        ok, note = (True, "") if baseline is None else _compare(t, base, now, tolerances.get(t.figure))
        if budget is not None and not budget["held"]:
            ok, note = False, "; ".join(x for x in ("CI budget broken", note) if x)
        if now is None and base is None and budget is None:
            continue
        rows.append(Row(name, t.figure, _fmt(base), _fmt(now), _budget_text(budget), ok, note))
    tracked = {t.figure for t in TRACKED}
    for fig, b in budgets.items():
        if fig not in tracked:
            rows.append(
                Row(
                    name,
                    fig,
                    "-",
                    _fmt(b["value"]),
                    _budget_text(b),
                    bool(b["held"]),
                    "" if b["held"] else "CI budget broken",
                )
            )
    exps = summary.get("expectations") or []
    held = sum(1 for e in exps if e["held"])
    rows.append(Row(name, "expectations", "-", f"{held}/{len(exps)} held", "all held", held == len(exps)))
    rows += [
        Row(name, f"expectation: {e['expectation']}", "-", _fmt(e["figure"]), "held", False, e["detail"])
        for e in exps
        if not e["held"]
    ]
    return rows


def check_slo(
    summaries: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]],
    *,
    require_baseline: bool = True,
) -> SloCheckResult:
    """Check every scenario's summary; see the module docstring."""
    result = SloCheckResult()
    for name in sorted(summaries):
        result.rows += check_scenario(name, summaries[name], baselines.get(name), require_baseline=require_baseline)
    return result


def baseline_of(name: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    figures = summary.get("figures") or {}
    return {
        "schema": BASELINE_SCHEMA,
        "scenario": name,
        "figures": {t.figure: figures.get(t.figure) for t in TRACKED},
        "expectations_held": sum(1 for e in summary.get("expectations") or [] if e["held"]),
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
    parser = argparse.ArgumentParser(prog="python -m reports.slocheck", description="SLO budget regression check")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--baselines", type=Path, default=Path("experiments/baselines"))
    parser.add_argument("--write", action="store_true", help="write the baselines instead of checking")
    parser.add_argument("--allow-missing-baseline", action="store_true")
    args = parser.parse_args(argv)
    summaries = load_summaries(args.run_dirs)
    if args.write:
        for name, summary in sorted(summaries.items()):
            print(f"wrote {write_baseline(name, summary, args.baselines)}")
        return 0
    result = check_slo(
        summaries, load_baselines(args.baselines, summaries), require_baseline=not args.allow_missing_baseline
    )
    print(result.table())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
