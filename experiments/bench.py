"""`make bench`: the simulator alone, then the gateway in front of it, measured in one run.

Processes: one simulator (flavour openai, zero-latency profile) and one gateway worker, each pinned to its own
core where the machine allows (the gateway to core 0, the simulator to core 1); the load generator is a minimal
keep-alive HTTP/1.1 client on raw asyncio sockets, so that it, not the system under test, stays cheap, and it
shares the simulator's core so that the gateway's core is the gateway's alone. Figures:

* RPS at 32 connections, non-streaming, simulator direct vs through the gateway;
* added latency p50/p99 at 1 connection (gateway minus direct, same request, in interleaved rounds: see
  :func:`paired`);
* streaming time to first token p50/p99 at 1 connection, direct and through the gateway;
* the same RPS and added p50 for a consumer with per-key limits, which pays the quota check and settle on the
  state store: the Redis at ``$REDIS_URL`` when set (as in production), else the embedded fakeredis;
* CPU per request of the whole pipeline in process (no sockets), the hot-path figure least disturbed by noise.

Prints a table and writes ``runs/bench.json``. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from experiments.bench_inprocess import cpu_per_request
from gateway.config import hash_key, parse_settings

KEY = "fl-bench-key"  # a consumer without limits: the quota stage does no state-store call
QUOTA_KEY = "fl-bench-quota-key"  # limits too high to reject: one check and one settle on the state store
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 8}
).encode()
STREAM_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 8,
        "stream": True,
    }
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_bytes(port: int, path: str, body: bytes, auth: bool, key: str = KEY) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if auth:
        head.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Conn:
    """One keep-alive connection; sends a request and reads one response (content-length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def roundtrip(self, req: bytes) -> tuple[int, float, float]:
        """Returns (status, seconds to first body byte, seconds to the end)."""
        t0 = time.perf_counter()
        self.w.write(req)
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        first = 0.0
        if chunked:
            while True:
                size = int((await self.r.readline()).strip(), 16)
                if not first:
                    first = time.perf_counter() - t0
                await self.r.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.r.readexactly(length)
            first = time.perf_counter() - t0
        return status, first, time.perf_counter() - t0

    def close(self) -> None:
        self.w.close()


async def throughput(port: int, req: bytes, connections: int, seconds: float) -> dict[str, float]:
    conns = [await Conn.open(port) for _ in range(connections)]
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker(c: Conn) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            status, _, _ = await c.roundtrip(req)
            done += 1
            errors += status != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return {"rps": done / elapsed, "requests": done, "errors": errors}


async def latencies(port: int, req: bytes, n: int) -> tuple[list[float], list[float]]:
    c = await Conn.open(port)
    firsts, totals = [], []
    for _ in range(50):  # warm-up
        await c.roundtrip(req)
    for _ in range(n):
        _, first, total = await c.roundtrip(req)
        firsts.append(first)
        totals.append(total)
    c.close()
    return firsts, totals


ROUNDS = 5


async def paired(
    direct_port: int, direct_req: bytes, gw_port: int, gw_req: bytes, samples: int, *, first_byte: bool = False
) -> dict[str, Any]:
    """Latency at one connection, direct and through the gateway, in :data:`ROUNDS` interleaved rounds (direct,
    then gateway), so that a slow spell of the machine lands on both sides of a round, not on one side of the whole
    comparison. ``added_p50_ms`` is the median of the rounds' p50 differences; the p99s are pooled over the
    rounds. ``first_byte``: time to the first body byte (a stream's first token) instead of the whole reply."""
    direct: list[float] = []
    gateway: list[float] = []
    added: list[float] = []
    for _ in range(ROUNDS):
        d_first, d_total = await latencies(direct_port, direct_req, max(1, samples // ROUNDS))
        g_first, g_total = await latencies(gw_port, gw_req, max(1, samples // ROUNDS))
        d, g = (d_first, g_first) if first_byte else (d_total, g_total)
        added.append(pct(g, 0.5) - pct(d, 0.5))
        direct += d
        gateway += g
    return {
        "direct_p50_ms": pct(direct, 0.5) * 1e3,
        "direct_p99_ms": pct(direct, 0.99) * 1e3,
        "gateway_p50_ms": pct(gateway, 0.5) * 1e3,
        "gateway_p99_ms": pct(gateway, 0.99) * 1e3,
        "added_p50_ms": statistics.median(added) * 1e3,
        "added_p99_ms": (pct(gateway, 0.99) - pct(direct, 0.99)) * 1e3,
        "rounds_added_p50_ms": [a * 1e3 for a in added],
    }


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def spawn(args: list[str], core: int | None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(core)] if core is not None and _has_taskset() else []
    return subprocess.Popen(
        prefix + args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _has_taskset() -> bool:
    return subprocess.run(["sh", "-c", "command -v taskset"], capture_output=True).returncode == 0


async def wait_port(port: int, within_s: float = 20.0) -> None:
    end = time.perf_counter() + within_s
    while time.perf_counter() < end:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def gateway_config(sim_port: int, gw_port: int) -> dict[str, Any]:
    return {
        "seed": 1,
        "server": {"host": "127.0.0.1", "port": gw_port, "metrics_port": 0},
        "consumers": [
            {"name": "bench", "key_sha256": hash_key(KEY), "tier": "default"},
            {
                "name": "bench-quota",
                "key_sha256": hash_key(QUOTA_KEY),
                "limits": {"rpm": 10**9, "tpm": 10**12, "tpd": 10**15},
            },
        ],
        "providers": [{"name": "sim", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "sim", "model": "gpt-4o-mini"}]}],
    }


async def run(seconds: float, samples: int) -> dict[str, Any]:
    sim_port, gw_port = free_port(), free_port()
    cores = os.cpu_count() or 1
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "gateway.yaml"
        cfg.write_text(yaml.safe_dump(gateway_config(sim_port, gw_port)))
        try:
            procs.append(
                spawn(
                    [
                        sys.executable,
                        "-m",
                        "simulators",
                        "--flavour",
                        "openai",
                        "--profile",
                        "instant",
                        "--seed",
                        "1",
                        "--port",
                        str(sim_port),
                    ],
                    core=1 if cores > 1 else None,
                )
            )
            procs.append(spawn([sys.executable, "-m", "gateway", "--config", str(cfg)], core=0 if cores > 1 else None))
            await wait_port(sim_port)
            await wait_port(gw_port)
            direct_req = request_bytes(sim_port, "/v1/chat/completions", BODY, auth=False)
            gw_req = request_bytes(gw_port, "/v1/chat/completions", BODY, auth=True)
            out: dict[str, Any] = {"cores": cores, "seconds": seconds, "samples": samples}
            out["direct_32"] = await throughput(sim_port, direct_req, 32, seconds)
            out["gateway_32"] = await throughput(gw_port, gw_req, 32, seconds)
            out["added_1"] = await paired(sim_port, direct_req, gw_port, gw_req, samples)
            quota_req = request_bytes(gw_port, "/v1/chat/completions", BODY, auth=True, key=QUOTA_KEY)
            out["quota_store"] = "redis" if os.environ.get("REDIS_URL") else "fakeredis"
            out["gateway_quota_32"] = await throughput(gw_port, quota_req, 32, seconds)
            out["quota_added_1"] = await paired(sim_port, direct_req, gw_port, quota_req, samples)
            out["ttft_added_1"] = await paired(
                sim_port,
                request_bytes(sim_port, "/v1/chat/completions", STREAM_BODY, False),
                gw_port,
                request_bytes(gw_port, "/v1/chat/completions", STREAM_BODY, True),
                samples,
                first_byte=True,
            )
            return out
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def table(r: dict[str, Any]) -> str:
    def row(label: str, m: dict[str, Any], q: str) -> tuple[str, str, str, str]:
        return (label, f"{m[f'direct_{q}_ms']:.3f}", f"{m[f'gateway_{q}_ms']:.3f}", f"+{m[f'added_{q}_ms']:.3f}")

    a, t, q = r["added_1"], r["ttft_added_1"], r["quota_added_1"]
    rows = [
        ("RPS @32 conns, non-streaming", f"{r['direct_32']['rps']:.0f}", f"{r['gateway_32']['rps']:.0f}", ""),
        row("latency p50 @1 conn (ms)", a, "p50"),
        row("latency p99 @1 conn (ms)", a, "p99"),
        row("stream TTFT p50 @1 conn (ms)", t, "p50"),
        row("stream TTFT p99 @1 conn (ms)", t, "p99"),
        (f"with quota ({r['quota_store']}): RPS @32", "", f"{r['gateway_quota_32']['rps']:.0f}", ""),
        (f"with quota ({r['quota_store']}): p50 @1", "", f"{q['gateway_p50_ms']:.3f}", f"+{q['added_p50_ms']:.3f}"),
    ]
    lines = [f"{'figure':32} {'simulator':>10} {'gateway':>10} {'added':>10}", "-" * 65]
    lines += [f"{a:32} {b:>10} {c:>10} {d:>10}" for a, b, c, d in rows]
    lines.append(f"{'pipeline CPU per request (us)':32} {'':>10} {r['pipeline_cpu_us']:>10.0f}")
    errs = r["direct_32"]["errors"] + r["gateway_32"]["errors"] + r["gateway_quota_32"]["errors"]
    lines.append(f"(errors during the runs: {errs}; {r['cores']} cores; {r['seconds']}s per throughput run)")
    spread = ", ".join(f"{x:.3f}" for x in a["rounds_added_p50_ms"])
    lines.append(f"(added p50 @1 conn: median of {ROUNDS} interleaved rounds: {spread} ms)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", default="runs/bench.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the load generator stays off the gateway's core (core 0)
    result = asyncio.run(run(args.seconds, args.samples))
    settings = parse_settings(gateway_config(1, 2))
    result["pipeline_cpu_us"] = asyncio.run(cpu_per_request(settings, "http://127.0.0.1:1", KEY, BODY))
    print(table(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
