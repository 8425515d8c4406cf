"""``python -m experiments``: run the named failure scenarios (the Makefile's experiment targets call this).

    python -m experiments run SCENARIO [--mode replay|real] [--seed N] [--scale F] [--runs-dir DIR] [--no-charts]
    python -m experiments all [--mode replay|real] [--scale F] [--runs-dir DIR] [--no-charts]
    python -m experiments list

``run`` creates ``<runs-dir>/<scenario>-<mode>-s<seed>[-x<scale>]`` (a ``.2``, ``.3``... suffix keeps an earlier
run intact), runs the scenario into it, prints the directory, the request log's SHA-256 (replay), then builds the
report (``python -m reports``) and prints its path and the expectations that broke. Exit status: 0 when the run
completed (broken SLOs or expectations are the report's findings, not a failure of the run), 1 when the run or
its report failed, 2 for a usage error (no scenario named: the list is printed; unknown scenario, real time not
available), 130 when interrupted.
``all`` runs every scenario in name order, one line each, then a table; ``list`` names each with the first
sentence of its description.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from experiments.rundir import RUNS_DIR, generate_report, new_run_dir
from experiments.scenario import Scenario, ScenarioError, scaled
from experiments.scenario_files import list_scenarios, load_scenario

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Something the user must fix before anything runs (exit status 2)."""


@dataclass
class Outcome:
    """What one ``run`` produced, for the line it prints and the table of ``all``."""

    scenario: str
    ok: bool = False
    run_dir: Path | None = None
    sha256: str | None = None
    records: int = 0
    wall_s: float = 0.0
    held: int = 0
    expectations: int = 0
    broken: list[str] = field(default_factory=list)
    error: str | None = None


def run_id(mode: str, seed: int, scale: float) -> str:
    """The run directory's id: a function of mode, seed and scale only."""
    return f"{mode}-s{seed}" + (f"-x{scale:g}" if scale != 1.0 else "")


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(?:\s|$)", text)
    return m.group(1) if m else text


def _positive(value: str) -> float:
    x = float(value)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return x


def _load(name: str) -> Scenario:
    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None


def _execute(sc: Scenario, run_dir: Path, mode: str, seed: int, scale: float, out: Outcome, load_workers: int) -> None:
    """Run ``sc`` (unscaled) into ``run_dir``; raise UsageError when real time is not available."""
    if mode == "replay":
        from experiments.replay import run_replay

        res = run_replay(scaled(sc, scale), run_dir, seed=seed, scale=scale)
        out.sha256, out.records = res.sha256, res.records
        print(f"request log SHA-256: {res.sha256}")
        print(f"{res.records} requests in {res.virtual_s:.0f} s of virtual time, {res.wall_s:.1f} s wall")
        return
    run_realtime = _realtime()
    real = run_realtime(scaled(sc, scale), run_dir, seed=seed, scale=scale, progress=True, load_workers=load_workers)
    out.records = real.records
    print(f"{real.records} requests in {real.wall_s:.0f} s wall; client status {real.client_status}")


def _realtime() -> Any:
    """``experiments.realtime.run_realtime``, imported only when a real-time run is asked for."""
    try:
        from experiments.realtime import run_realtime
    except ImportError as exc:
        raise UsageError(f"real-time mode is not available (experiments.realtime cannot be imported: {exc})") from None
    return run_realtime


def _read_expectations(run_dir: Path, out: Outcome) -> None:
    path = run_dir / "summary.json"
    if not path.exists():
        return
    results: list[dict[str, Any]] = orjson.loads(path.read_bytes()).get("expectations", [])
    out.expectations = len(results)
    out.held = sum(1 for e in results if e.get("held"))
    out.broken = [str(e.get("expectation")) for e in results if not e.get("held")]


def run_one(
    name: str, *, mode: str, seed: int | None, scale: float, runs_dir: Path, charts: bool, load_workers: int = 0
) -> Outcome:
    """One scenario, start to report. KeyboardInterrupt and UsageError propagate; any other failure is caught."""
    sc = _load(name)
    seed = sc.seed if seed is None else seed
    out = Outcome(sc.name)
    out.run_dir = run_dir = new_run_dir(sc.name, run_id(mode, seed, scale), root=runs_dir)
    print(f"[{sc.name}] {mode}, seed {seed}, scale {scale:g}: {run_dir}", flush=True)
    wall = time.perf_counter()
    try:
        _execute(sc, run_dir, mode, seed, scale, out, load_workers)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the run failed: say why, keep its directory for the post-mortem
        out.error = f"{type(exc).__name__}: {exc}"
        out.wall_s = time.perf_counter() - wall
        print(f"[{sc.name}] run failed: {out.error}", file=sys.stderr)
        return out
    out.wall_s = time.perf_counter() - wall
    sys.stdout.flush()
    if generate_report(run_dir, charts=charts) != 0:
        out.error = "the report could not be built"
        print(f"[{sc.name}] {out.error} (python -m reports {run_dir})", file=sys.stderr)
        return out
    _read_expectations(run_dir, out)
    out.ok = True
    print(f"report: {run_dir / 'report.md'}")
    print(f"expectations: {out.held}/{out.expectations} held" + "".join(f"\n  broken: {b}" for b in out.broken))
    return out


def _line(o: Outcome) -> str:
    if not o.ok:
        return f"{o.scenario:<28} FAILED  {o.error}"
    sha = (o.sha256 or "-")[:12]
    verdict = "held" if not o.broken else f"{len(o.broken)} broken"
    return f"{o.scenario:<28} ok  {o.records:>6}  {o.held}/{o.expectations} {verdict:<9}  {sha:<12}  {o.wall_s:6.1f} s"


def _check_load_workers(args: argparse.Namespace) -> None:
    if args.load_workers and args.mode != "real":
        raise UsageError("--load-workers (WORKERS=n) is for real-time runs: add --mode real (MODE=real)")


def cmd_run(args: argparse.Namespace) -> int:
    _check_load_workers(args)
    if args.scenario is None:
        print("which scenario? name one (make experiment SCENARIO=<name>); the scenarios:", file=sys.stderr)
        _print_list(sys.stderr)
        return EXIT_USAGE
    if args.mode == "real":
        _realtime()
    o = run_one(
        args.scenario,
        mode=args.mode,
        seed=args.seed,
        scale=args.scale,
        runs_dir=args.runs_dir,
        charts=args.charts,
        load_workers=args.load_workers,
    )
    return EXIT_OK if o.ok else EXIT_FAILED


def cmd_all(args: argparse.Namespace) -> int:
    _check_load_workers(args)
    if args.mode == "real":
        _realtime()
    outcomes = []
    for name in list_scenarios():
        try:
            o = run_one(
                name,
                mode=args.mode,
                seed=None,
                scale=args.scale,
                runs_dir=args.runs_dir,
                charts=args.charts,
                load_workers=args.load_workers,
            )
        except UsageError as exc:  # an invalid scenario file: report it, run the others
            o = Outcome(name, error=str(exc).splitlines()[-1].strip())
            print(f"[{name}] {exc}", file=sys.stderr)
        outcomes.append(o)
        print(_line(o), flush=True)
    print()
    print(f"{'scenario':<28} run {'records':>6}  expectations      {'sha256':<12}  {'wall':>8}")
    for o in outcomes:
        print(_line(o))
    failed = [o.scenario for o in outcomes if not o.ok]
    broken = sum(len(o.broken) for o in outcomes)
    print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} runs completed; {broken} expectation(s) broken")
    return EXIT_FAILED if failed else EXIT_OK


def _print_list(stream: TextIO) -> int:
    names = list_scenarios()
    width = max((len(n) for n in names), default=0)
    status = EXIT_OK
    for name in names:
        try:
            text = first_sentence(load_scenario(name).description)
        except ScenarioError as exc:
            text, status = f"INVALID: {str(exc).splitlines()[-1].strip()}", EXIT_FAILED
        print(f"{name:<{width}}  {text}", file=stream)
    return status


def cmd_list(_args: argparse.Namespace) -> int:
    return _print_list(sys.stdout)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments", description="Run the named failure scenarios.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--mode", choices=("replay", "real"), default="replay", help="default: replay")
        sp.add_argument("--scale", type=_positive, default=1.0, help="multiply every timeline (default 1)")
        sp.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help=f"default: {RUNS_DIR}/")
        sp.add_argument("--no-charts", dest="charts", action="store_false", help="report without PNG charts")
        sp.add_argument(
            "--load-workers",
            type=int,
            default=0,
            choices=range(0, 65),
            metavar="N",
            help="real time: locust as a master and N worker processes (default 0: one process)",
        )

    run = sub.add_parser("run", help="run one scenario and build its report")
    run.add_argument("scenario", nargs="?", help="a name from `python -m experiments list`, or a path to a YAML file")
    run.add_argument("--seed", type=int, default=None, help="default: the scenario's own seed")
    common(run)
    run.set_defaults(func=cmd_run)
    every = sub.add_parser("all", help="run every scenario, one line each, then a table")
    common(every)
    every.set_defaults(func=cmd_all)
    sub.add_parser("list", help="the scenarios, each with the first sentence of its description").set_defaults(
        func=cmd_list
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
