"""Real-time runs: a scenario against real processes on loopback, locust driving the load.

Processes (each in its own process group, see :mod:`experiments.procs`): the state store (a private
``redis-server``, the server at ``$REDIS_URL`` under a unique key prefix, or a fakeredis TCP server), one simulator
per reachable upstream (``python -m simulators`` with the upstream's profile and fault timeline, seeded with the
run's seed and the upstream's name, as in replay), the gateway (``python -m gateway --workers 2``, configured by
:func:`experiments.resolve.gateway_dict`, sharing the store) and locust (headless, ``locust_scenario.py``) sending
the seeded arrival schedule of :mod:`experiments.workload`.

Time origin: when every process is up and locust is ready, the runner picks ``started_at`` (epoch seconds, the
``t = 0`` of the scenario, as ``run.json`` records it in replay), restarts every simulator's timeline then
(``POST /_sim/profile``), and locust sends each arrival at ``started_at + t``. A state-store fault kills the
private store at its start and restarts it (empty, same port) at its end. The gateway's metrics are scraped into
``metrics/t<seconds>.prom`` every few seconds. At the end, on an error, on Ctrl-C or SIGTERM every process is
stopped (SIGTERM to its group, then SIGKILL); a graceful gateway stop flushes the request log.

Determinism: the arrivals, the request mix and each simulator's decisions follow the seed; what the gateway sees
(and so the outcomes) depends on OS scheduling and timing, so two runs tell the same story, not the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from experiments.loadplan import schedule
from experiments.procs import (
    Proc,
    Procs,
    StartupError,
    Store,
    StoreKind,
    free_port,
    locust_workers_args,
    no_interrupts,
    run_interrupts,
    spawn,
    start_store,
    wait_http,
)
from experiments.progress import ClientTail, Progress, status_line
from experiments.resolve import gateway_dict, merge, profile_dict, reloaded_dict
from experiments.rundir import events_from_log, timeline_events, write_events, write_json
from experiments.scenario import STATE_STORE, Scenario
from gateway.config import parse_settings

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locust_scenario.py"
WORKERS = 2
LEAD_S = 0.5  # the origin is announced this long before it, so locust's users are waiting for it
DETERMINISM = (
    "real time: the arrival schedule, the request mix and the simulators' decisions follow the seed; "
    "outcomes vary with OS timing (the same story, not the same bytes)"
)


@dataclass
class RealtimeResult:
    scenario: str
    seed: int
    run_dir: Path
    records: int
    client_status: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    client_requests: int = 0


def child_env(run_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every child: ``$FAULTLINE_RUN_DIR`` marks a run's processes (tests look for it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAULTLINE_REQUEST_LOG", "PROMETHEUS_MULTIPROC_DIR")}
    env["FAULTLINE_RUN_DIR"] = str(run_dir.resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _post_json(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=orjson.dumps(body), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5.0) as r:
        r.read()


def _scrape(url: str, path: Path) -> None:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2.0) as r:
        path.write_bytes(r.read())


class _Run:
    def __init__(
        self,
        sc: Scenario,
        run_dir: Path,
        seed: int,
        run_id: str,
        store_kind: StoreKind,
        prog: Progress,
        load_workers: int,
    ):
        self.sc, self.run_dir, self.seed, self.run_id = sc, run_dir, seed, run_id
        self.load_workers = load_workers
        self.store_kind = store_kind
        self.prog = prog
        self.procs = Procs()
        self.sims: dict[str, tuple[int, dict[str, Any]]] = {}
        self.started_at: float | None = None
        self.store: Store | None = None
        self.store_events: list[dict[str, Any]] = []
        self.reloads_done = 0

    def start(self) -> tuple[Proc, str]:
        """Start every process; return locust's and the gateway's metrics URL once all are ready."""
        sc, run_dir = self.sc, self.run_dir
        needs_stop = any(f.upstream == STATE_STORE for f in sc.faults)
        self.prog.message(f"[{sc.name}] starting the state store, {len(sc.upstreams)} upstream(s), the gateway")
        self.store = start_store(
            self.store_kind, run_dir, self.procs, run_id=self.run_id, needs_stop=needs_stop, env=child_env(run_dir)
        )
        waits: list[tuple[str, Proc, Path]] = []
        for u in sc.upstreams:
            if u.unreachable:
                continue
            port, prof = free_port(), profile_dict(u)
            prof_path = run_dir / f"sim-{u.name}.profile.yaml"
            prof_path.write_text(yaml.safe_dump(prof, sort_keys=False))
            log = run_dir / f"sim-{u.name}.log"
            args = ["--flavour", u.flavour, "--profile", str(prof_path), "--seed", str(self.seed), "--name", u.name]
            # --control to switch profiles; no decision log (nothing here reads it, and up to --log-limit
            # decisions would lengthen the simulator's full garbage collections, a stall in every latency)
            cmd = [sys.executable, "-m", "simulators", *args, "--port", str(port), "--control", "--log-limit", "0"]
            p = self.procs.add(spawn(f"simulator {u.name}", cmd, log_path=log, env=child_env(run_dir), cwd=ROOT))
            self.sims[u.name] = (port, prof)
            waits.append((f"http://127.0.0.1:{port}/v1/models", p, log))
        gw_port, metrics_port = free_port(), free_port()
        raw = gateway_dict(
            sc,
            base_urls={name: f"http://127.0.0.1:{port}" for name, (port, _) in self.sims.items()},
            seed=self.seed,
            request_log=str(run_dir / "requests.jsonl"),
            run_id=self.run_id,
            metrics_port=metrics_port,
            port=gw_port,
        )
        raw = merge(raw, {"state": {"redis_url": self.store.url}})
        if self.store.key_prefix:
            raw = merge(raw, {"quota": {"key_prefix": self.store.key_prefix}})
        (run_dir / "gateway.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        self.raw = raw
        self.settings = parse_settings(raw, source=f"scenario {sc.name} (gateway)")
        self.prom_dir = tempfile.mkdtemp(prefix="faultline-prom-")
        env = child_env(
            run_dir, REDIS_URL=self.store.url, FAULTLINE_RUN_ID=self.run_id, PROMETHEUS_MULTIPROC_DIR=self.prom_dir
        )
        cmd = [sys.executable, "-m", "gateway", "--config", str(run_dir / "gateway.yaml")]
        cmd += ["--host", "127.0.0.1", "--port", str(gw_port), "--workers", str(WORKERS)]
        log = run_dir / "gateway.log"
        gw = self.procs.add(spawn("gateway", cmd, log_path=log, env=env, cwd=ROOT))
        self.gateway = gw
        gateway_url = f"http://127.0.0.1:{gw_port}"
        locust = self._spawn_locust(gateway_url)  # starts while the gateway imports: both take seconds
        for url, p, lp in waits:
            wait_http(url, p, lp)
        wait_http(f"{gateway_url}/v1/health", gw, log, within_s=60.0)
        self._wait_locust(locust)
        return locust, f"http://127.0.0.1:{metrics_port}/metrics"

    def _spawn_locust(self, gateway_url: str) -> Proc:
        sched = schedule(self.sc, self.seed, self.settings, self.run_dir, workers=self.load_workers)
        self.grace_s = float(sched["grace_s"])
        path = self.run_dir / ".schedule.json"
        path.write_bytes(orjson.dumps(sched))
        if self.load_workers:
            for d in (sched["claims_dir"], sched["done_dir"]):
                Path(d).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", gateway_url]
        cmd += [
            "--csv",
            str(self.run_dir / "locust"),
            "--csv-full-history",
            "--html",
            str(self.run_dir / "locust.html"),
        ]
        cmd += ["--exit-code-on-error", "0", "--loglevel", "WARNING", "--only-summary"]
        if self.load_workers:  # a master and this many worker processes, each sending its share of the arrivals
            cmd += locust_workers_args(self.load_workers)
        log = self.run_dir / "locust.log"
        env = child_env(self.run_dir, FAULTLINE_SCHEDULE=str(path))
        self.ready_file = Path(sched["ready_file"])
        return self.procs.add(spawn("locust", cmd, log_path=log, env=env, cwd=ROOT))

    def _wait_locust(self, p: Proc) -> None:
        ready, log = self.ready_file, self.run_dir / "locust.log"
        deadline = time.monotonic() + 60.0
        while not ready.exists():
            if not p.running():
                raise StartupError(f"locust exited with {p.popen.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise StartupError(f"locust did not start within 60 s; see {log}")
            time.sleep(0.05)

    def go(self) -> float:
        """Announce the origin, restart the simulators' timelines at it; return it (epoch seconds)."""
        t0 = time.time() + LEAD_S
        tmp = self.run_dir / ".t0.tmp"
        tmp.write_text(repr(t0))
        tmp.replace(self.run_dir / ".t0")
        time.sleep(max(0.0, t0 - time.time()))
        for port, prof in self.sims.values():
            _post_json(f"http://127.0.0.1:{port}/_sim/profile", {"profile": prof})
        self.started_at = t0
        return t0

    def drive(self, locust: Proc, metrics_url: str, scrape_every_s: float, check: Callable[[], None]) -> None:
        """Until locust ends: state-store faults, reloads, scrapes, progress; ``check`` raises an interrupt that
        was lost where it was first raised."""
        sc, t0 = self.sc, self.started_at
        assert t0 is not None and self.store is not None
        tail = ClientTail(self.run_dir / "client.jsonl")
        windows = [(f.start_s, f.end_s or sc.duration_s) for f in sc.faults if f.upstream == STATE_STORE]
        down = False
        next_scrape = 0.0
        hard_stop = sc.duration_s + self.grace_s + 30.0
        (self.run_dir / "metrics").mkdir(exist_ok=True)
        while locust.running():
            elapsed = time.time() - t0
            if self.store.stoppable:
                want_down = any(a <= elapsed < b for a, b in windows)
                if want_down != down:
                    (self.store.stop if want_down else self.store.start)()
                    down = want_down
                    event = "store_stopped" if down else "store_restarted"
                    self.store_events.append({"event": event, "ts": time.time(), "kind": self.store.kind})
                    self.prog.message(f"[{sc.name}] {elapsed:5.1f} s: state store {'stopped' if down else 'restarted'}")
            self._reload_due(elapsed)
            if elapsed >= next_scrape:
                _scrape(metrics_url, self.run_dir / "metrics" / f"t{max(0.0, elapsed):07.1f}.prom")
                next_scrape += scrape_every_s
            check()
            if not self.gateway.running():
                raise StartupError(f"the gateway exited with {self.gateway.popen.returncode}; see gateway.log")
            tail.poll()
            self.prog.update(status_line(sc, elapsed, tail), elapsed)
            if elapsed > hard_stop:
                self.prog.message(f"[{sc.name}] locust still running {hard_stop:g} s in: stopping it")
                break
            time.sleep(0.25)
        if down:
            self.store.start()
        _scrape(metrics_url, self.run_dir / "metrics" / "final.prom")
        locust.stop(timeout_s=30.0)
        tail.poll()
        self.tail = tail

    def _reload_due(self, elapsed: float) -> None:
        """The scenario's reloads due by ``elapsed``: the configuration file replaced in one step, then SIGHUP to
        the gateway's parent process, which forwards it to every worker (docs/OPERATIONS.md, "Reload")."""
        while self.reloads_done < len(self.sc.reloads) and self.sc.reloads[self.reloads_done].at_s <= elapsed:
            self.raw = reloaded_dict(self.raw, self.sc.reloads[self.reloads_done])
            tmp = self.run_dir / ".gateway.yaml.tmp"
            tmp.write_text(yaml.safe_dump(self.raw, sort_keys=False))
            tmp.replace(self.run_dir / "gateway.yaml")
            self.gateway.popen.send_signal(signal.SIGHUP)
            self.reloads_done += 1
            self.prog.message(f"[{self.sc.name}] {elapsed:5.1f} s: configuration reloaded (SIGHUP)")

    def stop(self) -> None:
        with no_interrupts():
            self.procs.stop_all(timeout_s=15.0)
            if self.store is not None:
                self.store.forget()
        prom_dir = getattr(self, "prom_dir", None)
        if prom_dir:
            shutil.rmtree(prom_dir, ignore_errors=True)
        for name in (".t0", ".t0.tmp", ".locust-ready", ".schedule.json"):
            (self.run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.run_dir / ".arrivals", ignore_errors=True)


def run_realtime(
    sc: Scenario,
    run_dir: Path,
    *,
    seed: int | None = None,
    scale: float = 1.0,
    progress: bool = True,
    store: StoreKind = "auto",
    scrape_every_s: float | None = None,
    load_workers: int = 0,
) -> RealtimeResult:
    """Run ``sc`` (already scaled by ``scale``, as :func:`experiments.replay.run_replay` takes it) in real time
    into ``run_dir``. Raises :class:`experiments.procs.StartupError` when a process does not come up, and
    KeyboardInterrupt on Ctrl-C or SIGTERM; every process is stopped before it returns or raises. ``load_workers`` > 0
    runs locust as a master and that many worker processes (see ``experiments/locust_scenario.py``)."""
    seed = sc.seed if seed is None else seed
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = f"{sc.name}-real-s{seed}" + (f"-x{scale:g}" if scale != 1.0 else "")
    resolved = sc.resolved(scale=scale, mode="real", seed=seed)
    write_json(run_dir / "resolved_scenario.json", resolved)
    prog = Progress(enabled=progress)
    every = scrape_every_s if scrape_every_s is not None else max(1.0, min(5.0, sc.duration_s / 30))
    wall = time.perf_counter()
    run = _Run(sc, run_dir, seed, run_id, store, prog, load_workers)
    interrupted = False
    try:
        with run_interrupts() as intr:
            locust, metrics_url = run.start()
            intr.check()
            t0 = run.go()
            intr.check()
            up = time.perf_counter() - wall
            clock = time.strftime("%H:%M:%S", time.localtime(t0))
            prog.message(f"[{sc.name}] processes up in {up:.1f} s; load started at {clock}; files in {run_dir}")
            run.drive(locust, metrics_url, every, intr.check)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        prog.done()
        prog.message(f"[{sc.name}] stopping every process" + (" (interrupted)" if interrupted else ""))
        stopping = time.perf_counter()
        run.stop()
        prog.message(f"[{sc.name}] stopped in {time.perf_counter() - stopping:.1f} s")
        _finish(run, resolved, run_dir, seed, scale, interrupted, time.perf_counter() - wall)
    tail = run.tail
    records = _count_lines(run_dir / "requests.jsonl")
    prog.message(f"[{sc.name}] done: {records} request records, {tail.total} client calls in {run_dir}")
    return RealtimeResult(sc.name, seed, run_dir, records, dict(tail.status), time.perf_counter() - wall, tail.total)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for _ in f)


def _finish(
    run: _Run, resolved: dict[str, Any], run_dir: Path, seed: int, scale: float, interrupted: bool, wall: float
) -> None:
    """events.jsonl and run.json, whatever happened (a partial run is still a run directory)."""
    started_at = run.started_at
    events: list[dict[str, Any]] = []
    log = run_dir / "gateway.log"
    if log.exists():
        with log.open("rb") as f:
            events = events_from_log(f)
    if started_at is not None:
        events += timeline_events(resolved, started_at)
    write_events(run_dir / "events.jsonl", events + run.store_events)
    tail = getattr(run, "tail", None)
    if tail is None:  # interrupted or failed before the end: count what the client log has
        tail = ClientTail(run_dir / "client.jsonl")
        tail.poll()
    meta = {
        "scenario": run.sc.name,
        "mode": "real",
        "run_id": run.run_id,
        "seed": seed,
        "scale": scale,
        "started_at": started_at,
        "duration_s": run.sc.duration_s,
        "wall_s": round(wall, 3),
        "records": _count_lines(run_dir / "requests.jsonl"),
        "client_status": dict(tail.status),
        "workers": WORKERS,
        "load_workers": run.load_workers,
        "process_groups": [p.pid for p in run.procs.items],
        "state_store": run.store.kind if run.store is not None else None,
        "interrupted": interrupted,
        "determinism": DETERMINISM,
    }
    write_json(run_dir / "run.json", meta)
