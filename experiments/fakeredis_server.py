"""``python -m experiments.fakeredis_server --port P``: an in-memory Redis (fakeredis) on a TCP port.

The state store of a real-time run when no ``redis-server`` is installed: gateway workers in separate processes
need one shared server, and an embedded fakeredis is per process. It speaks RESP and runs Lua like Redis.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.fakeredis_server", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6390)
    args = ap.parse_args(argv)

    from fakeredis import TcpFakeServer

    server = TcpFakeServer((args.host, args.port), server_type="redis")
    server.daemon_threads = True  # open client connections must not hold the process at exit
    server.block_on_close = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
