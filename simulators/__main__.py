"""``python -m simulators --flavour openai|vllm|gemini --profile NAME --seed N --port P`` (uvicorn, one process)."""

from __future__ import annotations

import argparse
import logging
import sys

from simulators.failures import SimulatedConnectionReset
from simulators.profile import PROFILES_DIR, ProfileError, list_profiles, load_profile
from simulators.simulator import create_app


class _DropResets(logging.Filter):
    """A simulated reset is the point, not a bug: keep its traceback out of the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionReset)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    ap.add_argument("--flavour", choices=["openai", "vllm", "gemini"], default="openai")
    ap.add_argument("--profile", default="instant", help="a name from --list-profiles or a YAML path")
    ap.add_argument("--seed", default="0", help="scenario seed (int or string)")
    ap.add_argument("--name", default=None, help="backend name feeding the random streams (default: flavour)")
    ap.add_argument("--scale", type=float, default=None, help="timeline scale (windows and periods)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--control", action="store_true", help="enable /_sim/profile, /_sim/reset and /_sim/decisions")
    ap.add_argument("--log-limit", type=int, default=100_000, help="decisions kept in memory")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--list-profiles", action="store_true")
    args = ap.parse_args(argv)

    if args.list_profiles:
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:28s} {p.description}")
        print(f"\n({PROFILES_DIR})")
        return 0
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    try:
        app = create_app(
            args.flavour,
            args.profile,
            seed,
            args.name,
            control=args.control,
            scale=args.scale,
            reset_style="partial",
            log_limit=args.log_limit,
        )
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return 2

    import uvicorn

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
