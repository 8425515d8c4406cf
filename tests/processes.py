"""Helpers for tests that start real processes on loopback: free ports, readiness waits, a private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.tools import tool

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, *, attempts: int = 2400) -> None:
    """Until ``url`` answers below 500; the process behind it is starting (polling, not a timed assertion). The
    bound (2,400 polls 50 ms apart: two minutes and more) only stops a test whose process never comes up: a gateway
    with two workers took over 20 s to answer on a machine with both cores busy."""
    async with httpx.AsyncClient() as c:
        for _ in range(attempts):
            try:
                if (await c.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait for each (SIGKILL after 20 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def real_redis(redis_url: str | None) -> Iterator[str]:
    """$REDIS_URL when set, else a private redis-server on a free port (never the shared one)."""
    if redis_url:
        yield redis_url
        return
    port = free_port()
    proc = subprocess.Popen(
        [tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def gateway_behind_simulators(
    tmp: Path, config: dict[str, Any], sim_ports: dict[str, int]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A simulator process per flavour (``--control``, on its port) and ``python -m gateway`` with ``config``, run
    without the shared Redis and database; every process is stopped when the caller is done."""
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "FAULTLINE_REQUEST_LOG")}
    env["PYTHONPATH"] = str(ROOT)
    sims = [
        [sys.executable, "-m", "simulators", "--flavour", flavour, "--control", "--port", str(port)]
        for flavour, port in sim_ports.items()
    ]
    gateway = [sys.executable, "-m", "gateway", "--config", str(path)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env) for cmd in [*sims, gateway]]
    try:
        yield procs
    finally:
        stop(procs)
