"""`make instructions`: machine instructions per request, the forwarders' and the gateway's, under callgrind.

Time on a shared or virtual machine moves with everything else it runs; the number of instructions a process
executes for a request does not (valgrind's callgrind counts them, the same total for the same binary and
inputs whatever the load), except for work a process does by the clock rather than per request: the gateway's
refresh of its shared breaker states is taken out (``router.breaker.cache_s`` out of reach). Each system runs
under ``valgrind --tool=callgrind`` with instrumentation off while it starts and warms up (``--warmup``
requests), on for ``--requests`` requests over ``--connections`` keep-alive connections, then off again; the
figure is the instructions counted while it was on, divided by the requests.

Systems: ``forwarder`` (raw ASGI, the platform's limit), ``forwarder-fastapi`` (one FastAPI route),
``gateway`` (every feature on, a consumer without limits), ``gateway-quota`` (a consumer with limits: quota on
a real Redis, ``$REDIS_URL`` or a private ``redis-server``). The upstream is the simulator (profile ``instant``),
not measured. Needs valgrind. A measurement, not a test; slow (about a minute per system).

``python -m experiments.instructions [--systems gateway,forwarder] [--stream] [--keep DIR]``; with ``--keep``,
``callgrind_annotate --inclusive=yes DIR/gateway.callgrind`` shows where the instructions went (C functions and
the shared objects they live in: the interpreter, pydantic-core, orjson, uvloop, httptools, hiredis).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from experiments.bench import BODY, KEY, QUOTA_KEY, STREAM_BODY, Conn, gateway_config, quota_store, request_bytes
from experiments.procs import Procs, StartupError, free_port, spawn, wait_tcp

# The gateway refreshes its shared breaker states from the state store once per ``router.breaker.cache_s`` (0.5 s):
# once per about a thousand requests at full speed, but every few requests under valgrind, and more often the
# busier the machine, so that work would make the count depend on the load. It is set out of reach here.
CACHE_S = 1e9
SYSTEMS = ("forwarder", "forwarder-fastapi", "gateway", "gateway-quota")


async def send(port: int, req: bytes, n: int, connections: int) -> int:
    """``n`` requests over ``connections`` keep-alive connections; returns how many were not 200."""
    conns = [await Conn.open(port) for _ in range(connections)]
    left = n
    bad = 0

    async def worker(c: Conn) -> None:
        nonlocal left, bad
        while left > 0:
            left -= 1
            status, _, _ = await c.roundtrip(req)
            bad += status != 200

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return bad


def callgrind_total(out_file: Path) -> int:
    """The ``totals:`` line of a callgrind output file: the instructions counted while instrumentation was on."""
    for line in out_file.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise StartupError(f"no totals in {out_file}")


def toggle(pid: int, on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], check=True, capture_output=True)


def system_args(system: str, sim_port: int, port: int, tmp: Path, quota_prefix: str | None) -> list[str]:
    py = sys.executable
    if system.startswith("forwarder"):
        framework = "fastapi" if system.endswith("fastapi") else "asgi"
        upstream = f"http://127.0.0.1:{sim_port}"
        return [
            py,
            "-m",
            "experiments.forwarder",
            "--upstream",
            upstream,
            "--port",
            str(port),
            "--framework",
            framework,
        ]
    cfg = tmp / f"{system}.yaml"
    config = gateway_config(sim_port, port, quota_prefix, tmp / f"{system}-requests.jsonl")
    config["router"] = {"breaker": {"cache_s": CACHE_S}}  # per-request work only (the docstring says why)
    cfg.write_text(yaml.safe_dump(config))
    return [py, "-m", "gateway", "--config", str(cfg)]


def measure(
    system: str,
    sim_port: int,
    tmp: Path,
    procs: Procs,
    args: argparse.Namespace,
    env: dict[str, str],
    quota_prefix: str | None,
) -> float:
    port = free_port()
    out = tmp / f"{system}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    log = tmp / f"{system}.log"
    proc = procs.add(
        spawn(system, [*valgrind, *system_args(system, sim_port, port, tmp, quota_prefix)], log_path=log, env=env)
    )
    wait_tcp(port, proc, log, within_s=300.0)
    auth = system.startswith("gateway")
    key = QUOTA_KEY if system == "gateway-quota" else KEY
    req = request_bytes(port, "/v1/chat/completions", STREAM_BODY if args.stream else BODY, auth=auth, key=key)
    bad = asyncio.run(send(port, req, args.warmup, args.connections))
    toggle(proc.pid, True)
    bad += asyncio.run(send(port, req, args.requests, args.connections))
    toggle(proc.pid, False)
    proc.stop(timeout_s=120.0)
    if bad:
        raise StartupError(f"{system}: {bad} requests were not answered 200; see {log}")
    return callgrind_total(out) / int(args.requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.instructions")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--stream", action="store_true", help="streaming requests instead of JSON ones")
    parser.add_argument("--keep", type=Path, help="copy each system's callgrind file here (for callgrind_annotate)")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("instructions: needs valgrind (callgrind)", file=sys.stderr)
        return 2
    procs = Procs()
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            prefix = None
            if "gateway-quota" in systems:
                store = quota_store(tmp, procs)
                env["REDIS_URL"], prefix = store.url, store.key_prefix
            sim_port = free_port()
            sim_args = [sys.executable, "-m", "simulators", "--flavour", "openai", "--profile", "instant"]
            sim = procs.add(
                spawn(
                    "simulator",
                    [*sim_args, "--seed", "1", "--port", str(sim_port)],
                    log_path=tmp / "simulator.log",
                    env=env,
                )
            )
            wait_tcp(sim_port, sim, tmp / "simulator.log")
            for system in systems:
                results[system] = measure(system, sim_port, tmp, procs, args, env, prefix)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(tmp / f"{system}.callgrind", args.keep / f"{system}.callgrind")
                print(f"{system:18} {results[system] / 1000:10,.0f} k instructions per request", flush=True)
    except StartupError as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
    if "forwarder" in results:
        for system, n in results.items():
            print(f"{system:18} {n / results['forwarder']:6.2f} x the raw forwarder's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
