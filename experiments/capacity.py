"""`make capacity`: what one Redis carries when the gateway scales out — Redis commands and CPU per request.

Two layouts in front of one simulator (profile ``instant``) and one private ``redis-server``: one gateway with
``--workers 2``, and two single-worker gateways (replicas) on the same Redis. Each is loaded at 32 connections
(split evenly over the replicas) by a consumer with limits (a check and a settle on Redis per request), and each
reports, from Redis's own ``INFO commandstats`` and ``INFO cpu`` (reset before each layout with ``CONFIG
RESETSTAT``): commands per request, Redis CPU per 1,000 requests, and the gateway processes' CPU per request
(from /proc), whose ratio says how many gateway cores one Redis core carries. Writes ``runs/capacity.json``.
A private server is used so that its counters are this run's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from experiments.bench import BODY, PATH, QUOTA_KEY, cpu_seconds, gateway_config, request_bytes, throughput
from experiments.benchreport import machine
from experiments.procs import Procs, StartupError, free_port, group_members, spawn, start_store, wait_tcp

IGNORED = frozenset({"config|resetstat", "info"})  # this program's own


def group_cpu(pgid: int) -> float:
    return sum(cpu_seconds(pid) for pid in group_members(pgid))


def redis_figures(stats: dict[str, Any], cpu: dict[str, Any]) -> tuple[dict[str, int], float]:
    """Calls per command (``cmdstat_evalsha`` -> ``evalsha``) and CPU seconds (user + system) from INFO."""
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_")}
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def per_request(calls: dict[str, int], redis_cpu_s: float, gateway_cpu_s: float, requests: int) -> dict[str, Any]:
    """The figures of one layout, from the counters over its run. Pure."""
    n = max(requests, 1)
    gw_us, redis_us = gateway_cpu_s / n * 1e6, redis_cpu_s / n * 1e6
    return {
        "requests": requests,
        "evalsha_per_request": calls.get("evalsha", 0) / n,  # scripts sent: the quota's check and settle
        # every command Redis counted, those run inside the scripts included: Redis's work per request
        "redis_commands_per_request": sum(v for k, v in calls.items() if k not in IGNORED) / n,
        "redis_calls": calls,
        "redis_cpu_ms_per_1000_requests": redis_us,  # µs per request = ms per 1,000 requests
        "gateway_cpu_us_per_request": gw_us,
        "gateway_cores_per_redis_core": gw_us / redis_us if redis_us else None,
    }


async def measure(layout: str, ports: list[int], pgids: list[int], redis: Any, seconds: float) -> dict[str, Any]:
    reqs = [request_bytes(p, PATH, BODY, auth=True, key=QUOTA_KEY) for p in ports]
    for p, req in zip(ports, reqs, strict=True):  # warm-up: connections, scripts
        await throughput(p, req, 4, 1.0)
    await redis.config_resetstat()
    cpu0 = sum(group_cpu(g) for g in pgids)
    share = 32 // len(ports)
    runs = await asyncio.gather(*(throughput(p, req, share, seconds) for p, req in zip(ports, reqs, strict=True)))
    gateway_cpu = sum(group_cpu(g) for g in pgids) - cpu0
    calls, redis_cpu = redis_figures(await redis.info("commandstats"), await redis.info("cpu"))
    done = sum(int(r["requests"]) for r in runs)
    out = per_request(calls, redis_cpu, gateway_cpu, done)
    out |= {"layout": layout, "rps": sum(r["rps"] for r in runs), "errors": sum(int(r["errors"]) for r in runs)}
    return out


async def run(seconds: float, tmp: Path, procs: Procs) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis

    if not shutil.which("redis-server"):
        raise StartupError("make capacity needs redis-server (a private server: its counters must be this run's)")
    store = start_store("redis-server", tmp, procs, run_id="capacity", needs_stop=False)
    sim_port = free_port()
    py = sys.executable
    sim = [py, "-m", "simulators", "--flavour", "openai", "--profile", "instant", "--seed", "1", "--port"]
    env = {**os.environ, "REDIS_URL": store.url}
    wait_tcp(
        sim_port, procs.add(spawn("sim", [*sim, str(sim_port)], log_path=tmp / "sim.log", env=env)), tmp / "sim.log"
    )
    redis = aioredis.Redis.from_url(store.url)
    results = []
    try:
        for layout, workers in (("one gateway, --workers 2", [2]), ("two replicas, one worker each", [1, 1])):
            ports, pgids = [], []
            for i, w in enumerate(workers):
                port = free_port()
                cfg = tmp / f"gw-{port}.yaml"
                config = gateway_config(sim_port, port)
                # a busy machine must not turn the quota local (fail-open) and so off Redis: what is measured here
                # is Redis's work per request, not the store timeout
                config["state"] = {"timeout_s": 1.0}
                cfg.write_text(yaml.safe_dump(config))
                log = tmp / f"gw-{port}.log"
                p = procs.add(
                    spawn(
                        f"gateway {i}",
                        [py, "-m", "gateway", "--config", str(cfg), "--workers", str(w)],
                        log_path=log,
                        env=env,
                    )
                )
                wait_tcp(port, p, log)
                ports.append(port)
                pgids.append(p.pid)
            await asyncio.sleep(1.0)  # every worker up
            results.append(await measure(layout, ports, pgids, redis, seconds))
            for p in procs.items[-len(workers) :]:
                p.stop()
    finally:
        await redis.aclose()
    return results


def table(results: list[dict[str, Any]]) -> str:
    head = ("layout", "RPS", "evalsha/req", "cmds/req", "Redis ms/1k req", "gw us/req", "gw cores/Redis core")
    lines = [f"{head[0]:32} {head[1]:>7} {head[2]:>11} {head[3]:>9} {head[4]:>16} {head[5]:>10} {head[6]:>20}"]
    for r in results:
        ratio = r["gateway_cores_per_redis_core"]
        lines.append(
            f"{r['layout']:32} {r['rps']:7.0f} {r['evalsha_per_request']:11.2f} "
            f"{r['redis_commands_per_request']:9.2f} "
            f"{r['redis_cpu_ms_per_1000_requests']:16.1f} {r['gateway_cpu_us_per_request']:10.0f} "
            f"{(f'{ratio:.1f}' if ratio else '-'):>20}"
        )
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    """The same figures as a Markdown table (docs/DEPLOYMENT.md quotes it)."""
    lines = [
        "| layout | script calls per request | Redis commands per request (in the scripts) | Redis CPU per 1,000 "
        "requests | gateway CPU per request | gateway cores per Redis core |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["gateway_cores_per_redis_core"]
        lines.append(
            f"| {r['layout']} | {r['evalsha_per_request']:.2f} | {r['redis_commands_per_request']:.1f} | "
            f"{r['redis_cpu_ms_per_1000_requests']:.0f} ms | {r['gateway_cpu_us_per_request']:.0f} µs | "
            f"{f'{ratio:.1f}' if ratio else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.capacity")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default="runs/capacity.json")
    args = parser.parse_args(argv)
    import uvloop

    m = machine()
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = uvloop.run(run(args.seconds, Path(tmp), procs))
    except StartupError as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
    print(table(results))
    print()
    print(markdown(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": m, "seconds": args.seconds, "layouts": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
