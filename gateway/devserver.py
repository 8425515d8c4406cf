"""``make serve``: the gateway on :8000 in front of three simulated upstreams, with an embedded state store.

First checks that every port it needs is free (the gateway's, its metrics port, and the simulators' 9101-9103
on 127.0.0.1) and stops, naming the busy ones, if not. Then starts ``python -m simulators`` three times
(OpenAI-like on :9101, vLLM-like on :9102, Gemini-like on :9103) and the gateway (``python -m gateway`` with
deploy/gateway.example.yaml), and prints the banner only once every one of them answers. Every process is a
child that dies with this one (SIGTERM on exit and, on Linux, from the kernel if this process is killed):
Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import yaml

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gateway.example.yaml"
DEMO_KEY = "fl-demo-3c1f9a7e52d84b06"
HOST = "127.0.0.1"
UPSTREAMS = [("openai", "openai-gpt-4o-mini", 9101), ("vllm", "vllm-8b-h100", 9102), ("gemini", "gemini-flash", 9103)]


@dataclass(frozen=True)
class Service:
    """One process of the demo: what it is, its command, and the URL that answers once it is ready."""

    name: str
    port: int
    cmd: Sequence[str]
    ready_url: str


class Process(Protocol):
    """A started service, as :func:`serve` watches and stops it (subprocess.Popen)."""

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound now (nothing listens there)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def busy_ports(services: Sequence[Service], extra: Sequence[tuple[str, int]] = ()) -> list[str]:
    """``"8000 (gateway)"`` for each port that is taken."""
    wanted = [(s.name, s.port) for s in services] + list(extra)
    return [f"{port} ({name})" for name, port in wanted if port and not port_free(port)]


def answers(url: str) -> bool:
    """Whether an HTTP GET gets any HTTP answer (an error status is an answer: the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_ready(
    services: Sequence[Service],
    procs: Sequence[Process],
    *,
    within_s: float,
    ready: Callable[[str], bool] = answers,
    poll_s: float = 0.1,
) -> str | None:
    """None when every service answers within ``within_s``; else the name of one that exited or never answered."""
    pending = list(zip(services, procs, strict=True))
    deadline = time.monotonic() + within_s
    while pending:
        for svc, proc in list(pending):
            if proc.poll() is not None:
                return f"{svc.name} exited with status {proc.returncode}"
            if ready(svc.ready_url):
                pending.remove((svc, proc))
        if pending and time.monotonic() > deadline:
            return f"{pending[0][0].name} did not answer on {pending[0][0].ready_url} within {within_s:g} s"
        if pending:
            time.sleep(poll_s)
    return None


def _sim_cmd(flavour: str, profile: str, port: int) -> list[str]:
    args = ["--flavour", flavour, "--profile", profile, "--seed", "7", "--name", flavour, "--port", str(port)]
    return [sys.executable, "-m", "simulators", *args]


def services(config: Path = CONFIG) -> tuple[list[Service], int]:
    """The simulators and the gateway, and the gateway's metrics port (0: none), from the demo configuration."""
    server = (yaml.safe_load(config.read_text()) or {}).get("server") or {}
    port, metrics_port = int(server.get("port", 8000)), int(server.get("metrics_port", 0))
    out = [
        Service(
            f"{flavour} simulator",
            sim_port,
            _sim_cmd(flavour, profile, sim_port),
            f"http://{HOST}:{sim_port}/v1/models",
        )
        for flavour, profile, sim_port in UPSTREAMS
    ]
    out.append(
        Service(
            "gateway",
            port,
            [sys.executable, "-m", "gateway", "--config", str(config)],
            f"http://{HOST}:{port}/v1/health",
        )
    )
    return out, metrics_port


def banner(port: int, metrics_port: int) -> str:
    metrics = f"http://{HOST}:{metrics_port}/metrics" if metrics_port else "off"
    return (
        f"\nFaultline gateway  http://{HOST}:{port}/v1\n"
        f"demo API key       {DEMO_KEY}\n"
        "models             gpt-4o-mini (OpenAI-like 3 : vLLM-like 1, Gemini-like fallback), llama-3.1-8b\n"
        "                   (vLLM-like), gemini-flash (Gemini-like)\n"
        f"metrics            {metrics}\n"
        f"upstreams          http://{HOST}:9101 (openai sim), :9102 (vllm sim), :9103 (gemini sim)\n"
        f"reload             kill -HUP {os.getpid()} (the gateway reads its configuration file again)\n"
        "Ctrl-C stops everything.\n"
    )


def serve(
    svcs: Sequence[Service],
    metrics_port: int,
    *,
    out: TextIO,
    err: TextIO,
    spawn: Callable[[Sequence[str]], Process],
    ready: Callable[[str], bool] = answers,
    within_s: float = 30.0,
) -> int:
    """Check the ports, start everything, print the banner once all of it answers, then wait for the gateway."""
    busy = busy_ports(svcs, [("gateway metrics", metrics_port)])
    if busy:
        print(
            f"faultline: port(s) already in use on {HOST}: {', '.join(busy)}. Stop what listens there "
            "(`ss -ltnp` shows it), or change server.port / metrics_port in the configuration.",
            file=err,
        )
        return 1
    procs: list[Process] = []
    try:
        procs += [spawn(s.cmd) for s in svcs]
        problem = wait_ready(svcs, procs, within_s=within_s, ready=ready)
        if problem is not None:
            print(f"faultline: {problem}; stopping", file=err)
            return 1
        gateway = next(s for s in svcs if s.name == "gateway")
        print(banner(gateway.port, metrics_port), file=out, flush=True)
        return _wait_forwarding_hangup(procs[-1])
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)


def _wait_forwarding_hangup(gateway: Process) -> int:
    """Wait for the gateway; meanwhile a SIGHUP to this process goes to the gateway, which reloads its
    configuration (docs/OPERATIONS.md, "Reload")."""
    before = signal.signal(signal.SIGHUP, lambda signum, frame: gateway.send_signal(signal.SIGHUP))
    try:
        return gateway.wait()
    finally:
        signal.signal(signal.SIGHUP, before)


def _stop(procs: Sequence[Process]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


def _spawn(cmd: Sequence[str]) -> subprocess.Popen[bytes]:  # pragma: no cover - real processes
    return subprocess.Popen(list(cmd), preexec_fn=_die_with_parent)


def main() -> int:
    svcs, metrics_port = services()
    return serve(svcs, metrics_port, out=sys.stdout, err=sys.stderr, spawn=_spawn)


if __name__ == "__main__":
    os.environ.pop("REDIS_URL", None)  # the demo uses the embedded store
    sys.exit(main())
