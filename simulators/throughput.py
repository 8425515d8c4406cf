"""Simulator throughput: ``python -m simulators.throughput [--flavour openai] [--connections 32] [--seconds 5]``.

Starts ``python -m simulators --profile instant`` on a free loopback port (pinned to the last core when
``taskset`` exists; the load generator runs in this process on another core), drives it with a minimal
keep-alive HTTP/1.1 client on raw asyncio streams, and prints RPS and latency percentiles. The target is
>= 3,000 non-streaming RPS on one core. ``measure(url, connections, seconds)`` is the reusable part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 8}
).encode()


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def _roundtrip(r: asyncio.StreamReader, w: asyncio.StreamWriter, req: bytes) -> int:
    w.write(req)
    status = int((await r.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await r.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        low = name.lower()
        if low == b"content-length":
            length = int(value)
        elif low == b"transfer-encoding" and b"chunked" in value:
            chunked = True
    if chunked:
        while (size := int((await r.readline()).strip(), 16)) != 0:
            await r.readexactly(size + 2)
        await r.readexactly(2)
    else:
        await r.readexactly(length)
    return status


async def measure(
    url: str, connections: int = 32, seconds: float = 5.0, body: bytes = BODY, warmup: float = 0.5
) -> dict[str, Any]:
    """Closed-loop load on ``url`` (e.g. ``http://127.0.0.1:8100/v1/chat/completions``) for ``seconds``."""
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    req = _request(host, port, u.path or "/", body)
    conns = [await asyncio.open_connection(host, port) for _ in range(connections)]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t_warm = time.perf_counter() + warmup
    stop = t_warm + seconds

    async def worker(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while (t0 := time.perf_counter()) < stop:
            status = await _roundtrip(r, w, req)
            if t0 >= t_warm:
                lat.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(r, w) for r, w in conns))
    for _, w in conns:
        w.close()
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] * 1000 if lat else 0.0

    return {
        "connections": connections,
        "seconds": seconds,
        "requests": len(lat),
        "rps": len(lat) / seconds,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "statuses": statuses,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_listening(port: int, within: float = 20.0) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return
    raise RuntimeError(f"no simulator listening on port {port}")


async def bench(flavour: str = "openai", connections: int = 32, seconds: float = 5.0) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "simulators", "--flavour", flavour, "--profile", "instant", "--port", str(port)]
    cores = os.cpu_count() or 1
    if cores > 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cores - 1), *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_listening(port)
        out = await measure(f"http://127.0.0.1:{port}/v1/chat/completions", connections, seconds)
        out["flavour"] = flavour
        return out
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.throughput")
    ap.add_argument("--flavour", choices=["openai", "vllm", "gemini"], default="openai")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args(argv)
    out = asyncio.run(bench(args.flavour, args.connections, args.seconds))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
