"""Helpers for tests that start real processes on loopback: free ports, readiness waits, a private Redis."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.tools import tool

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, *, attempts: int = 400) -> None:
    """Until ``url`` answers below 500; the process behind it is starting (polling, not a timed assertion)."""
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
