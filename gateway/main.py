"""Process entry points: read the configuration and the environment, then build the app.

The environment is read here (``FAULTLINE_RUN_ID``: tags the request log) and in gateway/environ.py (the
configuration and its overrides).

``python -m gateway`` serves; ``python -m gateway migrate`` applies the database migrations;
``python -m gateway keys ...`` manages virtual keys (gateway/keyscli.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
from functools import partial

from fastapi import FastAPI

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import ConfigError
from gateway.environ import settings_from_env
from gateway.observability.logs import EventLog
from gateway.reload import SUPERVISOR_ENV, ReloadWiring
from gateway.rng import Rng


def app_from_env() -> FastAPI:
    """uvicorn factory (``uvicorn --factory gateway.main:app_from_env``); each worker builds its own app.

    Each process draws from the seed's stream named after this instance (host name and process id), so two
    workers or replicas sharing one configuration never draw the same request or trace ids."""
    settings = settings_from_env()
    rng = Rng(settings.seed).child(f"instance-{socket.gethostname()}-{os.getpid()}")
    app = create_app(settings, rng=rng, run_id=os.environ.get("FAULTLINE_RUN_ID") or None, reload=reload_wiring())
    tune_gc()
    return app


def reload_wiring() -> ReloadWiring:
    """A server process reloads its configuration on SIGHUP, from the same file and environment as at start
    (gateway/reload.py). Under the supervisor of several workers (``$FAULTLINE_SUPERVISOR_PID`` is this
    process's parent: gateway/supervisor.py), ``POST /admin/reload`` sends it SIGHUP, which it forwards to
    every worker; otherwise the admin call reloads this process alone."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    notify = None
    if supervisor.isdigit() and int(supervisor) == os.getppid():
        notify = partial(os.kill, int(supervisor), signal.SIGHUP)
    return ReloadWiring(source=settings_from_env, on_signal=True, notify=notify)


GC_GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Garbage collection for a long-running server process, once its app is built.

    Everything alive now (modules, the app, the configuration) lives as long as the process: ``gc.freeze()``
    moves it out of the collector's view so full collections stop re-scanning it. A request allocates a few
    hundred container objects, nearly all freed by reference counting when it ends; the default young-generation
    threshold (700 allocations) ran a collection every couple of requests. Measured with ``make bench`` on two
    cores: collections cost about 15 % of the gateway's CPU at 32 connections before this, and all but noise
    after (docs/ARCHITECTURE.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] in ("migrate", "keys"):
        from gateway.keyscli import main as records_main

        return records_main(args_in)
    return serve(args_in)


def serve(argv: list[str]) -> int:
    from gateway.connection.protocol import GuardedHttpToolsProtocol
    from gateway.supervisor import run_server

    parser = argparse.ArgumentParser(prog="python -m gateway", description="Run the Faultline gateway.")
    parser.add_argument("--config", help="YAML configuration (default: $GATEWAY_CONFIG)")
    parser.add_argument("--host", help="bind address (default: server.host)")
    parser.add_argument("--port", type=int, help="port (default: server.port)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the state store")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_env(args.config)
    except ConfigError as exc:  # one JSON event line, like every other log line of the gateway
        EventLog(SystemClock(), stream=sys.stderr).event("config_error", level="error", message=str(exc))
        return 2
    if args.config:
        os.environ["GATEWAY_CONFIG"] = args.config
    run_server(
        "gateway.main:app_from_env",
        factory=True,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        workers=args.workers,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,  # httptools, with the limits against hostile clients (gateway/connection/)
        ws="none",  # no WebSocket route: an Upgrade request is served as plain HTTP
        access_log=False,
        log_level="warning",
        # The gateway reads no client address, so uvicorn's X-Forwarded-For rewriting is pure cost (about 1 % of
        # its CPU at 32 connections, profiled); and a reply names no server software.
        proxy_headers=False,
        server_header=False,
    )
    return 0
