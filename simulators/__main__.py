"""``python -m simulators --flavour openai|vllm|gemini --profile NAME --seed N --port P`` (uvicorn, one process)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from simulators.failures import SimulatedConnectionReset
from simulators.profile import PROFILES_DIR, ProfileError, list_profiles, load_profile
from simulators.simulator import SimulatorApp, create_app


class _DropResets(logging.Filter):
    """A simulated reset is the point, not a bug: keep its traceback out of the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionReset)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    ap.add_argument("--flavour", choices=["openai", "vllm", "gemini"], default="openai")
    ap.add_argument("--profile", default="instant", help="a name from --list-profiles or a YAML path")
    ap.add_argument("--seed", default="0", help="scenario seed (int or string)")
    ap.add_argument("--name", default=None, help="backend name feeding the random streams (default: flavour)")
    ap.add_argument("--scale", type=float, default=None, help="timeline scale (windows and periods)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--control", action="store_true", help="enable /_sim/profile, /_sim/reset and /_sim/decisions")
    ap.add_argument(
        "--log-limit", type=int, default=100_000, help="decisions kept in memory for /_sim/decisions (with --control)"
    )
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--list-profiles", action="store_true")
    return ap.parse_args(argv)


def build(args: argparse.Namespace) -> SimulatorApp:
    """The app the process serves. Without ``--control`` nothing can read the decision log, so none is kept:
    up to ``--log-limit`` decisions, several tracked objects each, make every full garbage collection of a long
    run longer (up to 140 ms at 100 requests a second after eight minutes, every request in flight stalled
    meanwhile)."""
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    return create_app(
        args.flavour,
        args.profile,
        seed,
        args.name,
        control=args.control,
        scale=args.scale,
        reset_style="partial",
        log_limit=args.log_limit if args.control else 0,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list_profiles:
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:28s} {p.description}")
        print(f"\n({PROFILES_DIR})")
        return 0
    try:
        app = build(args)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return 2

    import uvicorn

    # What start-up leaves alive (modules, the app, its profile) lives about as long as the process: out of the
    # collector's view, full collections scan little more than what requests leave behind.
    gc.collect()
    gc.freeze()
    logging.getLogger("uvicorn.error").addFilter(_DropResets())
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        date_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
