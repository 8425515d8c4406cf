"""The parent process of several workers (``python -m gateway --workers N``): uvicorn's supervisor, except for
``SIGHUP``.

uvicorn's own supervisor answers SIGHUP by replacing every worker, which loses what each one holds (breaker
windows, the retry budget, latency averages, chaos rules set at run time) and, with a bad file, fails with a
traceback. Here SIGHUP is forwarded to each live worker instead, and each reloads its configuration in place
(gateway/reload.py). A worker asks for the same with ``POST /admin/reload``: it sends SIGHUP to this process,
whose id it finds in ``$FAULTLINE_SUPERVISOR_PID`` (set here before the workers start).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from gateway.reload import SUPERVISOR_ENV


class ForwardingSupervisor(Multiprocess):
    def handle_hup(self) -> None:
        for process in self.processes:
            pid = process.pid
            if pid is not None and process.process.is_alive():
                os.kill(pid, signal.SIGHUP)


def run_server(app: str, **options: Any) -> None:
    """``uvicorn.run(app, **options)``, with :class:`ForwardingSupervisor` over several workers."""
    if options.get("workers", 1) <= 1:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    sock = config.bind_socket()
    with contextlib.suppress(KeyboardInterrupt):
        ForwardingSupervisor(config, sockets=[sock]).run()
