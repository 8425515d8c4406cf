"""`make soak`: a long run of mixed traffic at a fixed rate through one gateway worker, with quotas on a real Redis.

Processes as in ``make bench`` (experiments/bench.py): the simulator (profile ``instant``), a private
``redis-server`` (or ``$REDIS_URL`` when no redis-server is installed: its memory then includes whatever else it
holds) and the load generator on core 1, the gateway alone on core 0. Every request is a limited consumer's
(limits too high to refuse: a check and a settle on Redis each); ``--stream-share`` of them stream. The load
generator keeps ``--rate`` requests a second on a fixed schedule over a pool of keep-alive connections (a slow
answer does not slow the schedule while a connection is free).

Every ``--interval`` seconds it records the gateway's resident memory and open file descriptors (from /proc), the
simulator's resident memory (a stall upstream is in every gateway latency), the store's ``used_memory`` and the
requests finished in that interval (count, errors, latency p50/p99/max), and at the end writes ``samples.json``,
``soak.png`` and ``report.md`` (checks: experiments/soakreport.py) into ``--out``.
Exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from experiments import soakreport
from experiments.bench import BODY, PATH, QUOTA_KEY, STREAM_BODY, Conn, gateway_config, pinned, request_bytes
from experiments.benchreport import machine, pct
from experiments.procs import Procs, StartupError, Store, free_port, spawn, start_store, wait_tcp


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> tuple[int, int, int]:
    """(all open fds, those that are not sockets, sockets the peer closed and the process has not: CLOSE_WAIT)."""
    sockets: set[str] = set()
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        total += 1
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    half_closed = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        half_closed += sum(1 for r in rows if (f := r.split())[3] == "08" and f[9] in sockets)  # 08: CLOSE_WAIT
    return total, total - len(sockets), half_closed


class Load:
    """Requests on a fixed schedule; finished ones are collected until :meth:`drain`."""

    def __init__(self, port: int, rate: float, stream_share: float, connections: int) -> None:
        self._reqs = [
            request_bytes(port, PATH, BODY, auth=True, key=QUOTA_KEY),
            request_bytes(port, PATH, STREAM_BODY, auth=True, key=QUOTA_KEY),
        ]
        self._port, self._rate, self._share, self._n = port, rate, stream_share, connections
        self._idle: asyncio.Queue[Conn] = asyncio.Queue()
        self.latencies: list[float] = []
        self.errors = self.streams = 0

    async def run(self, seconds: float) -> None:
        for _ in range(self._n):
            self._idle.put_nowait(await Conn.open(self._port))
        start, i, pending = time.perf_counter(), 0, set()
        while (due := start + i / self._rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            conn = await self._idle.get()
            stream = int((i + 1) * self._share) > int(i * self._share)  # a share of them, evenly spread
            task = asyncio.get_running_loop().create_task(self._one(conn, stream))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.gather(*pending)
        while not self._idle.empty():
            self._idle.get_nowait().close()

    async def _one(self, conn: Conn, stream: bool) -> None:
        try:
            status, _, total = await conn.roundtrip(self._reqs[stream])
        except (OSError, ValueError, asyncio.IncompleteReadError):
            self.errors += 1
            conn.close()
            self._idle.put_nowait(await Conn.open(self._port))
            return
        self.latencies.append(total)
        self.errors += status != 200
        self.streams += stream
        self._idle.put_nowait(conn)

    def drain(self) -> tuple[list[float], int, int]:
        out = (self.latencies, self.errors, self.streams)
        self.latencies, self.errors, self.streams = [], 0, 0
        return out


async def sample_loop(
    load: Load, pids: tuple[int, int], store: Any, interval: float, seconds: float, samples: list[dict[str, Any]]
) -> None:
    """``pids``: the gateway's and the simulator's (whose memory is sampled too: a stall upstream is in every
    gateway latency)."""
    gw_pid, sim_pid = pids
    start = time.perf_counter()
    for k in range(1, int(seconds / interval) + 1):  # the load runs half an interval longer: every sample is full
        await asyncio.sleep(max(0.0, k * interval - (time.perf_counter() - start)))
        lat, errors, streams = load.drain()
        info = await store.info("memory")
        fds, other_fds, half_closed = open_fds(gw_pid)
        samples.append(
            {
                "t": round(time.perf_counter() - start, 1),
                "requests": len(lat),
                "streams": streams,
                "errors": errors,
                "p50_ms": pct(lat, 0.5) * 1e3 if lat else 0.0,
                "p99_ms": pct(lat, 0.99) * 1e3 if lat else 0.0,
                "max_ms": max(lat) * 1e3 if lat else 0.0,
                "rss_mb": rss_mb(gw_pid),
                "sim_rss_mb": rss_mb(sim_pid),
                "fds": fds,
                "other_fds": other_fds,
                "close_wait": half_closed,
                "redis_mb": int(info["used_memory"]) / 2**20,
            }
        )


def chart(samples: list[dict[str, Any]], warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    panels = [
        ("RSS (MiB)", ["rss_mb", "sim_rss_mb"]),
        ("gateway open fds", ["fds"]),
        ("Redis used_memory (MiB)", ["redis_mb"]),
        ("latency (ms)", ["p50_ms", "p99_ms", "max_ms"]),
    ]
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for k in keys:
            ax.plot(t, [s[k] for s in samples], label={"rss_mb": "gateway", "sim_rss_mb": "simulator"}.get(k, k))
        ax.axvline(warmup_s, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(title)
        ax.set_ylim(0, 1.15 * max(max(s[k] for s in samples) for k in keys) or 1)
        if len(keys) > 1:
            ax.legend(loc="upper right")
    axes[-1].set_xlabel("seconds (dotted: end of warm-up)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pick_store(tmp: Path, procs: Procs) -> Store:
    if shutil.which("redis-server"):
        return start_store("redis-server", tmp, procs, run_id="soak", needs_stop=False)
    if os.environ.get("REDIS_URL"):
        return start_store("url", tmp, procs, run_id="soak", needs_stop=False)
    raise StartupError("the soak needs a real Redis: install redis-server or set REDIS_URL")


async def run(args: argparse.Namespace, tmp: Path, procs: Procs) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import redis.asyncio as aioredis

    cores = os.cpu_count() or 1
    front, back = (0, 1) if cores > 1 else (None, None)
    store = pick_store(tmp, procs)
    sim_port, gw_port = free_port(), free_port()
    cfg = tmp / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(gateway_config(sim_port, gw_port, store.key_prefix, tmp / "requests.jsonl")))
    py = sys.executable
    sim = [py, "-m", "simulators", "--flavour", "openai", "--profile", "instant", "--seed", "1", "--port"]
    env = {**os.environ, "REDIS_URL": store.url}
    sim_proc = procs.add(spawn("simulator", pinned([*sim, str(sim_port)], back), log_path=tmp / "sim.log", env=env))
    wait_tcp(sim_port, sim_proc, tmp / "sim.log")
    gw_log = Path(args.out) / "gateway.log"
    gw = procs.add(
        spawn("gateway", pinned([py, "-m", "gateway", "--config", str(cfg)], front), log_path=gw_log, env=env)
    )
    wait_tcp(gw_port, gw, gw_log)
    client = aioredis.Redis.from_url(store.url)
    load = Load(gw_port, args.rate, args.stream_share, args.connections)
    samples: list[dict[str, Any]] = []
    try:
        await asyncio.gather(
            load.run(args.seconds + args.interval / 2),
            sample_loop(load, (gw.pid, sim_proc.pid), client, args.interval, args.seconds, samples),
        )
    finally:
        await client.aclose()
        store.forget()
    info = {
        "seconds": args.seconds,
        "rate": args.rate,
        "stream_share": args.stream_share,
        "interval_s": args.interval,
        "warmup_s": args.warmup,
        "store": "a private redis-server" if store.kind == "redis-server" else "the Redis at $REDIS_URL",
    }
    return info, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.soak")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--stream-share", type=float, default=0.3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", default="runs/soak")
    args = parser.parse_args(argv)
    import uvloop

    Path(args.out).mkdir(parents=True, exist_ok=True)
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    m = machine()
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            info, samples = uvloop.run(run(args, Path(tmp), procs))
    except StartupError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
    info["machine"] = f"{m['cores']} cores, {m['cpu_model']}, {m['python']}, load average {m['load_avg'][0]:.2f}"
    out = Path(args.out)
    (out / "samples.json").write_text(json.dumps({"run": info, "samples": samples}, indent=2))
    chart(samples, args.warmup, out / "soak.png")
    (out / "report.md").write_text(soakreport.markdown(info, samples, "soak.png"))
    print((out / "report.md").read_text().split("\n| t (s)")[0])
    return 0 if all(v["passed"] for v in soakreport.verdicts(samples, args.warmup)) else 1


if __name__ == "__main__":
    sys.exit(main())
