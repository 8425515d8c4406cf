"""`make bench`: the gateway against the thinnest Python forwarders, in one run, on one upstream.

Processes, each pinned where the machine has two cores: the upstream (the simulator, flavour openai, profile
``instant``), the load generator and the state store on core 1; two forwarders (experiments/forwarder.py: uvicorn
with httptools and uvloop, one aiohttp session, nothing else; one a FastAPI route, the floors' yardstick, the
other a raw ASGI app, the platform's limit) and the gateway (one worker, every feature on: auth, validation,
quota, router, metrics, JSON logs, request log) on core 0, so that each has core 0 to itself while it is
measured. The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio sockets.

The quota rows use a real Redis: the server at ``$REDIS_URL`` when set (keys under a unique prefix, deleted
after), else a private ``redis-server`` on a loopback port. Never the embedded fakeredis: its cost is not
Redis's. Without either the bench stops and says so.

Every comparison is made in interleaved rounds (raw forwarder, FastAPI forwarder, gateway, gateway with limits,
one after the other, six times, the order reversed every other round), so a slow spell of the machine lands
inside one round and a drifting machine weighs on every system alike: throughput at 32
connections (ratios are the median of the rounds' ratios), latency at one connection and streaming time to first
token (p50 differences are the median of the rounds' differences, p99s pooled). Ratios to each forwarder, the
floors (judged against the FastAPI forwarder) and the table: experiments/benchreport.py. Writes
``runs/bench.json`` with the machine's description (cores, CPU model, Python, load average). A benchmark, not a
test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from experiments import benchreport, benchspeed
from experiments.bench_inprocess import cpu_per_request
from experiments.procs import Procs, StartupError, Store, free_port, spawn, start_store, wait_tcp
from gateway.config import hash_key, parse_settings

KEY = "fl-bench-key"  # a consumer without limits: the quota stage does no state-store call
QUOTA_KEY = "fl-bench-quota-key"  # limits too high to reject: a check and a settle on the state store
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
LATENCY_ROUNDS = 6
THROUGHPUT_ROUNDS = 6
PATH = "/v1/chat/completions"
SYSTEMS = ("direct", "forwarder", "forwarder_fastapi", "gateway", "gateway_quota")  # the upstream first


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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    port: int, req: bytes, connections: int, seconds: float, pid: int | None = None
) -> dict[str, float]:
    """Requests per second over ``connections`` keep-alive connections; with ``pid``, that process's CPU per
    request (µs) too: the figure least moved by other work on the machine."""
    conns = [await Conn.open(port) for _ in range(connections)]
    cpu0 = cpu_seconds(pid)
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
    cpu_us = (cpu_seconds(pid) - cpu0) / max(done, 1) * 1e6
    for c in conns:
        c.close()
    return {"rps": done / elapsed, "requests": done, "errors": errors, "cpu_us": cpu_us}


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


def pinned(args: list[str], core: int | None) -> list[str]:
    return ["taskset", "-c", str(core), *args] if core is not None and shutil.which("taskset") else args


def gateway_config(
    sim_port: int, gw_port: int, key_prefix: str | None = None, request_log: Path | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "seed": 1,
        "server": {"host": "127.0.0.1", "port": gw_port, "metrics_port": 0},
        "consumers": [
            {"name": "bench", "key_sha256": hash_key(KEY), "tier": "default"},
            {
                "name": "bench-quota",
                "key_sha256": hash_key(QUOTA_KEY),
                "limits": {"rpm": 10**9, "tpm": 10**12, "tpd": 10**15, "max_concurrency": 10**6},
            },
        ],
        "providers": [{"name": "sim", "kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1"}],
        "models": [{"name": "gpt-4o-mini", "routes": [{"provider": "sim", "model": "gpt-4o-mini"}]}],
    }
    if key_prefix:
        config["quota"] = {"key_prefix": key_prefix}
    if request_log is not None:  # every feature on: the request log too (written off the request's path)
        config["observability"] = {"request_log_path": str(request_log)}
    return config


def quota_store(tmp: Path, procs: Procs) -> Store:
    """$REDIS_URL, else a private redis-server; never fakeredis."""
    if os.environ.get("REDIS_URL"):
        return start_store("url", tmp, procs, run_id="bench", needs_stop=False)
    if not shutil.which("redis-server"):
        raise StartupError("the quota rows need a real Redis: set REDIS_URL or install redis-server")
    return start_store("redis-server", tmp, procs, run_id="bench", needs_stop=False)


class Targets:
    """The systems under comparison: name -> (port, request bytes), for JSON and for streaming requests."""

    def __init__(self, ports: Mapping[str, int], pids: Mapping[str, int] | None = None) -> None:
        """``ports`` and ``pids``: process name (simulator, forwarder, forwarder_fastapi, gateway) -> its own."""
        pids = pids or {}
        procs = {"direct": "simulator", "gateway_quota": "gateway"}
        self.pid = {n: pids.get(procs.get(n, n)) for n in SYSTEMS}
        self.json = {n: self._request(n, ports[procs.get(n, n)], BODY) for n in SYSTEMS}
        self.stream = {n: self._request(n, ports[procs.get(n, n)], STREAM_BODY) for n in SYSTEMS}

    @staticmethod
    def _request(name: str, port: int, body: bytes) -> tuple[int, bytes]:
        auth = name.startswith("gateway")
        key = QUOTA_KEY if name == "gateway_quota" else KEY
        return port, request_bytes(port, PATH, body, auth=auth, key=key)


async def throughput_rounds(t: Targets, seconds: float, probe: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """RPS at 32 connections: the upstream once, then the two forwarders, the gateway and the gateway with limits
    in rounds; ``probe`` runs before each round (the machine's speed: experiments/benchspeed.py)."""
    direct = await throughput(*t.json["direct"], 32, seconds / THROUGHPUT_ROUNDS, pid=t.pid["direct"])
    out: dict[str, Any] = {"direct": direct}
    names = SYSTEMS[1:]
    rounds: list[dict[str, float]] = []
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for i in range(THROUGHPUT_ROUNDS):
        await probe()
        one = {}
        for n in benchreport.round_order(names, i):
            m = await throughput(*t.json[n], 32, seconds / THROUGHPUT_ROUNDS, pid=t.pid[n])
            runs[n].append(m)
            one[n] = m["rps"]
        rounds.append(one)
    for n in names:
        total = sum(m["requests"] for m in runs[n])
        out[n] = {
            "rps": total / sum(m["requests"] / m["rps"] for m in runs[n]),
            "requests": total,
            "errors": sum(m["errors"] for m in runs[n]),
            "rounds_rps": [m["rps"] for m in runs[n]],
            "cpu_us": sum(m["cpu_us"] * m["requests"] for m in runs[n]) / max(total, 1),
        }
    out["ratios"] = benchreport.against_forwarders(rounds, benchreport.rps_ratio)
    return out


async def latency_rounds(
    targets: Mapping[str, tuple[int, bytes]], samples: int, probe: Callable[[], Awaitable[None]], *, first_byte: bool
) -> list[dict[str, list[float]]]:
    """One connection per system, ``samples`` requests each split over interleaved rounds; seconds per request
    (to the first body byte with ``first_byte``: a stream's first token)."""
    rounds = []
    for i in range(LATENCY_ROUNDS):
        await probe()
        one = {}
        for name in benchreport.round_order(list(targets), i):
            port, req = targets[name]
            n = samples // LATENCY_ROUNDS + (i < samples % LATENCY_ROUNDS)  # ``samples`` in all
            firsts, totals = await latencies(port, req, max(1, n))
            one[name] = firsts if first_byte else totals
        rounds.append(one)
    return rounds


def latency_figures(rounds: list[dict[str, list[float]]]) -> dict[str, Any]:
    out = benchreport.summarize_rounds(rounds, "direct")
    out["over_p50_ms"] = benchreport.against_forwarders(rounds, benchreport.over)
    return out


async def run(seconds: float, samples: int, tmp: Path, procs: Procs) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    front, back = (0, 1) if cores > 1 else (None, None)
    ports = {name: free_port() for name in ("simulator", "forwarder", "forwarder_fastapi", "gateway")}
    store = quota_store(tmp, procs)
    with contextlib.suppress(Exception):
        if store.proc is not None:  # a private store shares the upstream's core
            os.sched_setaffinity(store.proc.pid, {back} if back is not None else set(range(cores)))
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(gateway_config(ports["simulator"], ports["gateway"], store.key_prefix, tmp / "requests.jsonl"))
    )
    py = sys.executable
    sim = [py, "-m", "simulators", "--flavour", "openai", "--profile", "instant", "--seed", "1", "--port"]
    env = {**os.environ, "REDIS_URL": store.url}
    fwd = [py, "-m", "experiments.forwarder", "--upstream", f"http://127.0.0.1:{ports['simulator']}", "--port"]
    starts = [
        ("simulator", pinned([*sim, str(ports["simulator"])], back)),
        ("forwarder", pinned([*fwd, str(ports["forwarder"])], front)),
        ("forwarder_fastapi", pinned([*fwd, str(ports["forwarder_fastapi"]), "--framework", "fastapi"], front)),
        ("gateway", pinned([py, "-m", "gateway", "--config", str(cfg)], front)),
    ]
    pids = {}
    for name, args in starts:
        log = tmp / f"{name}.log"
        proc = procs.add(spawn(name, args, log_path=log, env=env))
        wait_tcp(ports[name], proc, log)
        pids[name] = proc.pid
    try:
        t = Targets(ports, pids)
        out: dict[str, Any] = {"seconds": seconds, "samples": samples, "quota_store": _store_label(store)}
        loop_ms: dict[str, list[float]] = {}
        probe = benchspeed.speed_probe((front, back) if front is not None else (None,), loop_ms)
        out["throughput"] = await throughput_rounds(t, seconds, probe)
        out["latency"] = latency_figures(await latency_rounds(t.json, samples, probe, first_byte=False))
        streams = {n: t.stream[n] for n in SYSTEMS if n != "gateway_quota"}
        out["ttft"] = latency_figures(await latency_rounds(streams, samples, probe, first_byte=True))
        await probe()
        out["speed_loop_ms"] = loop_ms
        return out
    finally:
        store.forget()


def _store_label(store: Store) -> str:
    return "Redis at $REDIS_URL" if store.kind == "url" else "private redis-server"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench")
    parser.add_argument(
        "--seconds", type=float, default=18.0, help="seconds of each system's throughput runs (in six rounds)"
    )
    parser.add_argument("--samples", type=int, default=2000, help="requests per system for each latency figure")
    parser.add_argument("--out", default="runs/bench.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the load generator stays off the core of the system under test (core 0)
    machine = benchreport.machine()
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(run(args.seconds, args.samples, Path(tmp), procs))
            procs.stop_all()
    except StartupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
    result["machine"] = machine
    result["machine_after"] = benchreport.machine()["load_avg"]
    settings = parse_settings(gateway_config(1, 2))
    result["pipeline_cpu_us"] = asyncio.run(cpu_per_request(settings, "http://127.0.0.1:1", KEY, BODY))
    result["verdicts"] = benchreport.verdicts(result)
    print(benchreport.table(result))
    print(f"pipeline CPU per request, in process: {result['pipeline_cpu_us']:.0f} us")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
