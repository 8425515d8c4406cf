"""``python -m experiments.loadtest``: locust with the project's locustfile against a running gateway.

    python -m experiments.loadtest                                  # web UI on http://127.0.0.1:8089
    python -m experiments.loadtest --headless --users 20 --spawn-rate 5 --run-time 60s
    python -m experiments.loadtest --url http://gw:8000 --key KEY -- --csv out/run --html out/run.html
    python -m experiments.loadtest --headless --scenario noisy-neighbor --workers 4

Defaults: the gateway of ``make serve`` (http://127.0.0.1:8000) and its demo key. ``--workers N`` runs locust's
distributed mode on this machine: one master that aggregates the statistics and N worker processes that send the
requests (locust's ``--processes``; for workers on other machines pass ``-- --master`` here and start
``locust -f experiments/locustfile.py --worker --master-host HOST`` there). ``--scenario NAME`` takes a scenario's
load: its user count over time (``ceil(rate x pacing_s)``, from experiments/locust_shape.py), pacing, model and
streaming share, for its duration — not its seeded arrivals, consumers or faults, which only the real-time runner
(``python -m experiments run``) reproduces. Arguments after ``--`` go to locust unchanged (``--csv``...). Locust
runs in a process of its own (it monkey-patches the interpreter with gevent); this one builds its command line
and replaces itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.procs import locust_workers_args
from experiments.scenario import ScenarioError
from experiments.scenario_files import load_scenario

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SHAPE = Path(__file__).resolve().parent / "locust_shape.py"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_KEY = "fl-demo-3c1f9a7e52d84b06"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m experiments.loadtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=DEFAULT_URL, help=f"gateway root URL (default {DEFAULT_URL})")
    ap.add_argument("--key", default=None, help="API key (default $FAULTLINE_API_KEY, else the demo key)")
    ap.add_argument("--model", default=None, help="model to ask for (default gpt-4o-mini)")
    ap.add_argument("--stream-share", type=float, default=None, help="share of streaming requests, 0-1 (0.5)")
    ap.add_argument("--pacing", type=float, default=None, help="seconds between one user's requests (1.0)")
    ap.add_argument("--headless", action="store_true", help="no web UI: run, print the summary, exit")
    ap.add_argument("--users", type=int, default=None, help="peak number of users (headless default 10)")
    ap.add_argument("--spawn-rate", type=float, default=None, help="users started per second (headless default 2)")
    ap.add_argument("--run-time", default=None, help="stop after this long, e.g. 60s, 5m (headless default 60s)")
    ap.add_argument("--workers", type=int, default=0, help="locust worker processes under one master (0: none)")
    ap.add_argument("--scenario", default=None, help="a scenario's load shape, pacing and request mix")
    ap.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address the web UI, and a master for workers on other machines (-- --master), listen on "
        "(default 127.0.0.1; 0.0.0.0 for every interface); local --workers always use the loopback",
    )
    ap.add_argument("locust_args", nargs="*", help="after --: passed to locust as they are")
    return ap


def command(args: argparse.Namespace) -> list[str]:
    """The locust command line for the parsed arguments."""
    files = f"{LOCUSTFILE},{SHAPE}" if args.scenario else str(LOCUSTFILE)
    cmd = [sys.executable, "-m", "locust", "-f", files, "--host", args.url.rstrip("/")]
    key = args.key or os.environ.get("FAULTLINE_API_KEY") or DEFAULT_KEY
    cmd += ["--api-key", key]
    model, share, pacing = args.model, args.stream_share, args.pacing
    if args.scenario:
        sc = load_scenario(args.scenario)
        cmd += ["--scenario", args.scenario]
        model = model or sc.request_mix.model
        share = sc.request_mix.stream_share if share is None else share
        pacing = sc.load.pacing_s if pacing is None else pacing
    if model:
        cmd += ["--model", model]
    if share is not None:
        cmd += ["--stream-share", str(share)]
    if pacing is not None:
        cmd += ["--pacing", str(pacing)]
    if args.workers:
        cmd += locust_workers_args(args.workers)  # local workers: the master listens on the loopback
    elif "--master" in args.locust_args:  # workers on other machines reach the master at --bind
        cmd += ["--master-bind-host", args.bind]
    return cmd + _ui_args(args) + list(args.locust_args)


def _ui_args(args: argparse.Namespace) -> list[str]:
    """Headless (users, rate and run time defaulted) or the web UI; with a scenario its shape sets them."""
    if args.headless:
        if args.scenario:
            return ["--headless"]
        return [
            "--headless",
            *["--users", str(args.users or 10), "--spawn-rate", f"{args.spawn_rate or 2:g}"],
            *["--run-time", args.run_time or "60s"],
        ]
    out = ["--web-host", args.bind]
    if not args.scenario:
        if args.users is not None:
            out += ["--users", str(args.users)]
        if args.spawn_rate is not None:
            out += ["--spawn-rate", f"{args.spawn_rate:g}"]
        if args.run_time is not None:
            out += ["--run-time", args.run_time]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stream_share is not None and not 0 <= args.stream_share <= 1:
        parser().error("--stream-share must be between 0 and 1")
    if args.workers < 0:
        parser().error("--workers must be 0 or more")
    if args.scenario and (args.users or args.spawn_rate or args.run_time):
        parser().error("--scenario sets the users, the spawn rate and the run time itself")
    try:
        cmd = command(args)
    except ScenarioError as exc:
        parser().error(str(exc))
    if not args.headless:
        print(f"locust web UI on http://{args.bind}:8089 (Ctrl-C stops it)", file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
