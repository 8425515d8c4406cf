"""Child processes of a real-time run: spawned in their own process group, stopped as a whole tree.

Every child starts in a new session (its own process group, so a Ctrl-C in the terminal reaches only the runner,
which then stops the children in order) and, on Linux, with a parent-death signal, so a runner killed outright
does not leave its direct children running. :meth:`Proc.stop` sends SIGTERM to the group, waits, then SIGKILLs it;
:class:`Procs` stops everything it started, last started first.

The state store of a run (:func:`start_store`): a private ``redis-server`` on a free port when one is installed,
else the server at ``$REDIS_URL`` (keys under a unique prefix; it cannot be stopped for a store fault), else a
fakeredis TCP server (:mod:`experiments.fakeredis_server`). A private store is stopped and restarted on the
same port for a state-store fault.

:func:`run_interrupts` turns Ctrl-C and SIGTERM into :class:`RunInterrupted` (a KeyboardInterrupt) for the duration
of a run, so both signals unwind through the same cleanup, and keeps the signal to raise again where it was lost;
:func:`no_interrupts` ignores them while processes are being stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

StoreKind = Literal["auto", "redis-server", "url", "fakeredis"]
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_workers_args(workers: int) -> list[str]:
    """locust's arguments for a master with ``workers`` local worker processes: the master listens on loopback, on a
    free port rather than the fixed 5557, so two runs on one machine never collide."""
    port = str(free_port())
    return [
        "--processes",
        str(workers),
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--master-host",
        "127.0.0.1",
        "--master-port",
        port,
    ]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (read from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            out.append(int(entry))
    return out


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``timeout_s``, then SIGKILL whatever of it is left."""
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (self.running() or group_members(pgid)):
            time.sleep(0.05)
        if self.running() or group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        if self.log is not None:
            self.log.close()
            self.log = None


def spawn(
    name: str, args: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    """Start ``args`` in a new session (environment ``env``, default ours), output appended to ``log_path``."""
    log = log_path.open("ab")
    popen = subprocess.Popen(
        list(args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return Proc(name, popen, log)


@dataclass
class Procs:
    """Everything a run started; :meth:`stop_all` stops them newest first and never raises."""

    items: list[Proc] = field(default_factory=list)

    def add(self, p: Proc) -> Proc:
        self.items.append(p)
        return p

    def pids(self) -> list[int]:
        return [p.pid for p in self.items]

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for p in reversed(self.items):
            with contextlib.suppress(Exception):
                p.stop(timeout_s)


class StartupError(RuntimeError):
    """A child process did not come up; the message names it and its log."""


def wait_http(url: str, proc: Proc, log_path: Path, *, within_s: float = 60.0, ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok``; fail fast when ``proc`` exits."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not proc.running():
            raise StartupError(f"{proc.name} exited with {proc.popen.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise StartupError(f"{proc.name} did not answer {url} within {within_s:g} s; see {log_path}")


def wait_tcp(port: int, proc: Proc, log_path: Path, *, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not proc.running():
            raise StartupError(f"{proc.name} exited with {proc.popen.returncode}; see {log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise StartupError(f"{proc.name} did not listen on port {port} within {within_s:g} s; see {log_path}")


@dataclass
class Store:
    """The run's state store: its URL, the key prefix the gateway uses, and the process when it is private."""

    kind: Literal["redis-server", "url", "fakeredis"]
    url: str
    key_prefix: str | None = None
    port: int | None = None
    log_path: Path | None = None
    proc: Proc | None = None
    procs: Procs | None = None
    env: dict[str, str] | None = None

    @property
    def stoppable(self) -> bool:
        return self.kind != "url"

    def _args(self) -> list[str]:
        if self.kind == "redis-server":
            return [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--daemonize", "no", "--protected-mode", "no"),
            ]
        return [sys.executable, "-m", "experiments.fakeredis_server", "--port", str(self.port)]

    def start(self) -> None:
        assert self.log_path is not None and self.port is not None and self.procs is not None
        self.proc = self.procs.add(
            spawn(f"state store ({self.kind})", self._args(), log_path=self.log_path, env=self.env)
        )
        wait_tcp(self.port, self.proc, self.log_path)

    def stop(self) -> None:
        """Kill the private store (a state-store fault): SIGKILL, as an OOM kill or a crashed node."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(timeout=5)

    def forget(self) -> int:
        """A shared server: delete this run's keys (its prefix); returns how many. A private store just dies."""
        if self.kind != "url" or not self.key_prefix:
            return 0
        import redis

        n = 0
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(self.url, socket_timeout=2.0) as r:
            for key in r.scan_iter(match=f"{self.key_prefix}:*", count=500):
                n += int(r.delete(key))
        return n


def start_store(
    kind: StoreKind, run_dir: Path, procs: Procs, *, run_id: str, needs_stop: bool, env: dict[str, str] | None = None
) -> Store:
    """Start (or pick) the run's state store. ``needs_stop``: the scenario stops the store, so a shared server
    at ``$REDIS_URL`` will not do."""
    if kind == "auto":
        if shutil.which("redis-server"):
            kind = "redis-server"
        elif os.environ.get("REDIS_URL") and not needs_stop:
            kind = "url"
        else:
            kind = "fakeredis"
    if kind == "url":
        url = os.environ.get("REDIS_URL")
        if not url:
            raise StartupError("store 'url' needs $REDIS_URL")
        if needs_stop:
            raise StartupError("this scenario stops the state store: it needs a private one, not $REDIS_URL")
        return Store("url", url, key_prefix=f"faultline-rt-{run_id}-{os.getpid()}-{time.time_ns()}")
    port = free_port()
    store = Store(kind, f"redis://127.0.0.1:{port}/0", port=port, log_path=run_dir / "store.log", procs=procs, env=env)
    store.start()
    return store


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run."""


class Interrupts:
    """The signal that interrupted a run, kept after it was raised: where Python ignores an exception (an at-fork
    callback, say logging's, while a child process is being spawned: it prints "Exception ignored" and goes on) a
    Ctrl-C would otherwise be lost; :meth:`check` raises it again."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise RunInterrupted(f"signal {signum}")

    def check(self) -> None:
        if self.signum is not None:
            raise RunInterrupted(f"signal {self.signum}")


@contextlib.contextmanager
def run_interrupts() -> Iterator[Interrupts]:
    """Ctrl-C and SIGTERM raise :class:`RunInterrupted` for the duration of a run (in the main thread; elsewhere
    nothing is installed), so both unwind through the same cleanup; the caller checks the yielded
    :class:`Interrupts` at its own steps so that one raised where it was ignored still stops the run."""
    intr = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield intr
        return
    old = {s: signal.signal(s, intr.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield intr
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """While processes are being stopped, a second Ctrl-C must not abandon them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
