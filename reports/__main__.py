"""``python -m reports RUN_DIR [RUN_DIR ...]``: regenerate report.md, postmortem.md, summary.json and charts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.build import build
from reports.expectation_models import ExpectationError
from reports.markdown import pct
from reports.summary_models import Summary


def one_line(s: Summary) -> str:
    """The run in one line, in report.md's words and units: each SLO met or BROKEN with its budget used."""
    slos = ", ".join(
        f"{r['title']} {'met' if r['verdict'] == 'met' else 'BROKEN'} ({pct(r['error_budget_consumed'], 1)} of budget)"
        for r in s["slos"]
    )
    exps = s["expectations"]
    broken = sum(1 for e in exps if not e["held"])
    return f"availability {pct(s['figures']['availability'])}; {slos}; {broken} of {len(exps)} expectation(s) broken"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--bucket-s", type=float, default=None, help="time bucket width (default: by run length)")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument(
        "--database", metavar="URL", help="read the request records from the gateway's database instead of the JSONL"
    )
    args = parser.parse_args(argv)
    status = 0
    for run_dir in args.run_dirs:
        if args.database is None and not (run_dir / "requests.jsonl").exists():
            print(f"{run_dir}: no requests.jsonl", file=sys.stderr)
            status = 2
            continue
        try:
            computed = build(run_dir, bucket_s=args.bucket_s, charts=not args.no_charts, database_url=args.database)
        except (ExpectationError, ValueError) as exc:
            print(f"{run_dir}: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{run_dir}: {one_line(computed.summary)} -> {run_dir / 'report.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
