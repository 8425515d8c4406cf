"""``make slo-check`` and ``make rebaseline``: replay every scenario and hold it to the SLO gate.

``python -m experiments.slocheck [--write] [--scale F] [--jobs N] [--keep DIR] [--baselines DIR] [--scenarios DIR]
[NAME...]``

For each scenario (all of ``experiments/scenarios/`` unless names are given): a virtual-time replay with the
scenario's own seed at ``--scale`` (default 1), in ``--jobs`` worker processes (default 2), then
``reports.build.build(run_dir, charts=False)`` for its ``summary.json``. The summaries go through
:func:`reports.slogate.check_slo`: (a) each SLO's error budget used against what the scenario allows, (b) its
expectations, (c) each tracked figure against the committed baseline ``experiments/baselines/<name>.json``
(rules in docs/REPORTS.md). The table (scenario, gate, figure, now, limit, verdict, note) and one line per
breach go to stdout, progress to stderr; exit 1 when any check fails or a scenario cannot be replayed.

``--write`` replays the same way and rewrites the baselines of the replayed scenarios from the new figures (on
purpose: commit them with the change that moved them). SLO budgets and expectations are not baselined, so the
check that follows the write can still fail, and then the exit status is 1. Run directories go to a temporary
directory, or to ``--keep DIR`` (``DIR/<name>/``) to look at them afterwards.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.replay import run_replay
from experiments.scenario import SCENARIOS_DIR, ScenarioError, scaled
from experiments.scenario_files import list_scenarios, load_scenario
from reports.build import build
from reports.expectation_models import ExpectationError
from reports.slogate import Row, SloCheckResult, check_slo, load_baselines, write_baseline
from reports.summary_models import Summary

BASELINES_DIR = Path("experiments/baselines")

Replayer = Callable[[str, Path], Summary]


@dataclass
class Collected:
    summaries: dict[str, Summary] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def replay_summary(name: str, run_dir: Path, *, scenarios_dir: Path = SCENARIOS_DIR, scale: float = 1.0) -> Summary:
    """Replay one scenario into ``run_dir`` (created) and return its ``summary.json`` dict."""
    sc = scaled(load_scenario(name, scenarios_dir), scale)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_replay(sc, run_dir, scale=scale)
    return build(run_dir, charts=False).summary


@dataclass(frozen=True)
class ReplayJob:
    """:func:`replay_summary` as a picklable callable, so worker processes can run it."""

    scenarios_dir: Path = SCENARIOS_DIR
    scale: float = 1.0

    def __call__(self, name: str, run_dir: Path) -> Summary:
        return replay_summary(name, run_dir, scenarios_dir=self.scenarios_dir, scale=self.scale)


def collect(
    names: Iterable[str], work_dir: Path, replay: Replayer, log: Callable[[str], None], *, jobs: int = 1
) -> Collected:
    """Replay each scenario into ``work_dir/<name>``; a scenario that cannot be replayed is an error, not a crash.

    ``jobs`` > 1 runs the replays in that many worker processes (``spawn``: polars' thread pool must not be
    forked); ``replay`` must then be picklable. Each replay is deterministic, so the results do not depend on it.
    """
    out = Collected()
    names = list(names)
    started = time.perf_counter()
    if jobs <= 1:
        for name in names:
            t = time.perf_counter()
            _record(out, name, functools.partial(replay, name, work_dir / name), log, t)
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(replay, name, work_dir / name): name for name in names}
        for fut in as_completed(futures):
            _record(out, futures[fut], fut.result, log, started)
    return out


def _record(out: Collected, name: str, result: Callable[[], Summary], log: Callable[[str], None], since: float) -> None:
    try:
        summary = result()
    except Exception as exc:  # any failure of one scenario is that scenario's failing row, not a crash
        first = str(exc).splitlines()[0] if str(exc) else ""
        out.errors[name] = f"{type(exc).__name__}: {first}"
        log(f"{name}: cannot replay: {out.errors[name]}")
        if not isinstance(exc, ScenarioError | ExpectationError):
            log("".join(traceback.format_exception(exc)))
        return
    out.summaries[name] = summary
    f = summary["figures"]
    log(
        f"{name}: {f['requests']:,} requests, availability {_short(f['availability'])}, "
        f"{time.perf_counter() - since:.1f} s"
    )


def _short(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def result_of(collected: Collected, baselines: dict[str, dict[str, Any]]) -> SloCheckResult:
    result = check_slo(collected.summaries, baselines)
    for name, err in sorted(collected.errors.items()):
        result.rows.append(Row(name, "replay", "the scenario's replay", "-", "-", "FAIL", err))
    return result


def run(
    names: list[str],
    *,
    baselines_dir: Path,
    work_dir: Path,
    replay: Replayer,
    write: bool = False,
    every_scenario: bool = False,
    jobs: int = 1,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> tuple[int, str]:
    """Replay, (optionally) write the baselines, check; return (exit status, the table).

    ``every_scenario``: every scenario was replayed, so a baseline with no scenario is reported as an orphan.
    """
    collected = collect(names, work_dir, replay, log, jobs=jobs)
    if write:
        for name, summary in sorted(collected.summaries.items()):
            log(f"wrote {write_baseline(name, summary, baselines_dir)}")
    result = result_of(collected, load_baselines(baselines_dir, collected.summaries))
    orphans = sorted(p.stem for p in baselines_dir.glob("*.json") if p.stem not in names) if every_scenario else []
    text = result.table()
    if orphans:
        text += "\nnote: baselines without a scenario (delete them?): " + ", ".join(orphans)
    if write and not result.passed:
        text += "\nbaselines written, but SLO budgets and expectations are not baselined: the failures above remain"
    return (0 if result.passed else 1), text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.slocheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="scenarios to check (default: all)")
    parser.add_argument("--write", action="store_true", help="rewrite the baselines from this replay")
    parser.add_argument("--scale", type=float, default=1.0, help="time scale of the replays (default 1)")
    parser.add_argument("--baselines", type=Path, default=BASELINES_DIR)
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS_DIR)
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="replays in parallel worker processes (default: 2, or 1 on a one-CPU machine)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories under DIR/<name>/")
    args = parser.parse_args(argv)
    names = args.names or list_scenarios(args.scenarios)
    if not names:
        print(f"no scenarios in {args.scenarios}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slo-check-") as tmp:
        work_dir = args.keep or Path(tmp)
        status, text = run(
            names,
            baselines_dir=args.baselines,
            work_dir=work_dir,
            replay=ReplayJob(args.scenarios, args.scale),
            write=args.write,
            every_scenario=not args.names,
            jobs=max(1, args.jobs),
        )
    print(text)
    print(f"{len(names)} scenario(s) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
