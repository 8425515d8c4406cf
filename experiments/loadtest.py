"""``python -m experiments.loadtest``: locust with the project's locustfile against a running gateway.

    python -m experiments.loadtest                                  # web UI on http://127.0.0.1:8089
    python -m experiments.loadtest --headless --users 20 --spawn-rate 5 --run-time 60s
    python -m experiments.loadtest --url http://gw:8000 --key KEY -- --csv out/run --html out/run.html

Defaults: the gateway of ``make serve`` (http://127.0.0.1:8000) and its demo key. Arguments after ``--`` go to
locust unchanged (``--master``, ``--worker``, ``--processes``, ``--csv``...). Locust runs in a process of its own
(it monkey-patches the interpreter with gevent); this one only builds its command line and replaces itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
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
    ap.add_argument("locust_args", nargs="*", help="after --: passed to locust as they are")
    return ap


def command(args: argparse.Namespace) -> list[str]:
    """The locust command line for the parsed arguments."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", args.url.rstrip("/")]
    key = args.key or os.environ.get("FAULTLINE_API_KEY") or DEFAULT_KEY
    cmd += ["--api-key", key]
    if args.model:
        cmd += ["--model", args.model]
    if args.stream_share is not None:
        cmd += ["--stream-share", str(args.stream_share)]
    if args.pacing is not None:
        cmd += ["--pacing", str(args.pacing)]
    if args.headless:
        cmd += ["--headless", "--users", str(args.users or 10), "--spawn-rate", f"{args.spawn_rate or 2:g}"]
        cmd += ["--run-time", args.run_time or "60s"]
    else:
        if args.users is not None:
            cmd += ["--users", str(args.users)]
        if args.spawn_rate is not None:
            cmd += ["--spawn-rate", f"{args.spawn_rate:g}"]
        if args.run_time is not None:
            cmd += ["--run-time", args.run_time]
    return cmd + list(args.locust_args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stream_share is not None and not 0 <= args.stream_share <= 1:
        parser().error("--stream-share must be between 0 and 1")
    cmd = command(args)
    if not args.headless:
        print("locust web UI on http://127.0.0.1:8089 (Ctrl-C stops it)", file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
