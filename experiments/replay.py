"""Virtual-time replay: a scenario in one process, byte for byte reproducible from its seed.

One :class:`gateway.clock.VirtualTimeLoop`: the gateway app (``create_app`` with a ``LoopClock``, ``Rng(seed)``,
fakeredis — wrapped in :class:`experiments.statefault.FlakyState` when the scenario kills the state store — and
an ``AsgiTransport`` to one simulator app per upstream), driven by the seeded open-loop arrival process of
:mod:`experiments.workload`. Clients call the gateway app in-process through another ``AsgiTransport`` (it
streams chunk by chunk, so time to first token is real virtual time). Nothing reads the wall clock, draws from
global random state or waits on a thread in this path; idle time is skipped, so minutes replay in seconds.

Same scenario + seed -> the same request log, byte for byte: :attr:`ReplayResult.sha256` proves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import yaml

from experiments.resolve import REPLAY_URL, gateway_dict, profile_dict, reloaded_dict
from experiments.rundir import (
    events_from_log,
    sha256_of,
    timeline_events,
    write_events,
    write_json,
)
from experiments.scenario import STATE_STORE, Scenario
from experiments.statefault import FlakyState
from experiments.workload import Arrival, arrivals, request_body, request_headers
from gateway.app import create_app
from gateway.clock import LoopClock, VirtualTimeLoop
from gateway.config import load_settings, parse_settings
from gateway.reload import Reloader, ReloadWiring
from gateway.rng import Rng
from gateway.store.client import StateClient
from gateway.transport import AsgiTransport, TransportError
from simulators import create_app as create_simulator

GATEWAY_URL = "http://gateway.replay"
DRAIN_GRACE_S = 15.0  # after the deadline, requests still open are cancelled (and logged as such)


@dataclass
class ReplayResult:
    scenario: str
    seed: int
    run_dir: Path
    sha256: str
    records: int
    client_requests: int
    client_status: dict[str, int] = field(default_factory=dict)
    virtual_s: float = 0.0
    wall_s: float = 0.0


class _Lifespan:
    """Runs an ASGI app's lifespan protocol (startup on enter, shutdown on exit)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _expect(self, what: str) -> None:
        msg = await self._outbox.get()
        if msg["type"] != f"lifespan.{what}.complete":
            raise RuntimeError(f"lifespan {what} failed: {msg.get('message', msg['type'])}")

    async def __aenter__(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        await self._expect("startup")

    async def __aexit__(self, *exc: Any) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._expect("shutdown")
        if self._task is not None:
            await self._task


class _Client:
    """The load generator's clients: one call per arrival, re-sent per the consumer's client behaviour."""

    def __init__(self, sc: Scenario, transport: AsgiTransport, clock: LoopClock, deadline_header: str) -> None:
        self.sc = sc
        self.transport = transport
        self.clock = clock
        self.deadline_header = deadline_header
        self.log: list[dict[str, Any]] = []

    async def call(self, a: Arrival, t0: float) -> None:
        mix = self.sc.request_mix
        body = request_body(mix, a.stream, a.prompt_tokens, a.max_tokens, a.idx)
        behaviour = a.consumer.client
        for attempt in range(behaviour.retries + 1):
            rid = f"c{a.idx:06d}-{attempt}"
            headers = request_headers(mix, a.consumer.key, rid, self.deadline_header)
            if behaviour.idempotency_key:
                headers["idempotency-key"] = f"c{a.idx:06d}"
            status, ttft, stream_error = await self._once(headers, body, a.stream)
            now = self.clock.monotonic()
            self.log.append(
                {
                    "id": rid,
                    "t": round(now - t0, 6),
                    "consumer": a.consumer.name,
                    "stream": a.stream,
                    "status": status,
                    "ttft_s": ttft,
                    "stream_error": stream_error,
                }
            )
            if status not in behaviour.retry_on or attempt == behaviour.retries:
                return
            if behaviour.backoff_s:
                await asyncio.sleep(behaviour.backoff_s * 2**attempt)

    async def _once(self, headers: dict[str, str], body: bytes, stream: bool) -> tuple[int, float | None, bool]:
        start = self.clock.monotonic()
        try:
            resp = await self.transport.send(f"{GATEWAY_URL}/v1/chat/completions", headers, body, connect_timeout=5.0)
        except TransportError:
            return 0, None, False
        ttft: float | None = None
        stream_error = False
        try:
            async for chunk in resp.iter_bytes():
                if ttft is None:
                    ttft = round(self.clock.monotonic() - start, 6)
                if stream and b'data: {"error"' in chunk:
                    stream_error = True
        except TransportError:
            stream_error = True
        finally:
            await resp.aclose()
        return resp.status, ttft if stream else None, stream_error


async def _replay(sc: Scenario, seed: int, run_dir: Path, run_id: str) -> dict[str, Any]:
    clock = LoopClock()
    t0 = clock.monotonic()
    upstreams = [u for u in sc.upstreams if not u.unreachable]
    sims = {
        REPLAY_URL.format(name=u.name): create_simulator(u.flavour, profile_dict(u), seed, u.name, clock)
        for u in upstreams
    }
    raw = gateway_dict(
        sc,
        base_urls={u.name: REPLAY_URL.format(name=u.name) for u in upstreams},
        seed=seed,
        request_log=str(run_dir / "requests.jsonl"),
        run_id=run_id,
    )
    (run_dir / "gateway.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = parse_settings(raw, source=f"scenario {sc.name}")
    embedded = fakeredis.FakeAsyncRedis()
    state: StateClient = embedded
    windows = [(f.start_s, f.end_s or sc.duration_s) for f in sc.faults if f.upstream == STATE_STORE]
    if windows:
        state = FlakyState(embedded, clock=clock, windows=windows, t0=t0)
    config_path = run_dir / "gateway.yaml"
    gateway = create_app(
        settings,
        clock=clock,
        rng=Rng(seed),
        state=state,
        upstream_transport=AsgiTransport(sims),
        run_id=run_id,
        reload=ReloadWiring(source=lambda: load_settings(config_path)),
    )
    client = _Client(sc, AsgiTransport({GATEWAY_URL: gateway}), clock, settings.router.timeouts.deadline_header)
    started_at = clock.now()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as stack:
        for app in sims.values():
            await stack.enter_async_context(_Lifespan(app))
        await stack.enter_async_context(_Lifespan(gateway))
        tasks.append(asyncio.create_task(_reload(sc, raw, config_path, gateway.state.reloader, clock, t0)))
        for a in arrivals(sc, seed):
            delay = t0 + a.t - clock.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(client.call(a, t0)))
        rest = t0 + sc.duration_s - clock.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        grace = settings.router.timeouts.request_deadline_s + DRAIN_GRACE_S
        pending = [t for t in tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for t in still:
                t.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        for t in tasks:
            failure = None if t.cancelled() else t.exception()
            if failure is not None:
                raise failure
        virtual_s = clock.monotonic() - t0
    (run_dir / "client.jsonl").write_bytes(
        b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in client.log)
    )
    status: dict[str, int] = {}
    for r in client.log:
        status[str(r["status"])] = status.get(str(r["status"]), 0) + 1
    return {"started_at": started_at, "virtual_s": virtual_s, "client": client.log, "status": status}


async def _reload(
    sc: Scenario, raw: dict[str, Any], path: Path, reloader: Reloader, clock: LoopClock, t0: float
) -> None:
    """The scenario's reloads: at each one's time the configuration file is rewritten and reloaded, as SIGHUP
    would in a live run."""
    for spec in sc.reloads:
        delay = t0 + spec.at_s - clock.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        raw = reloaded_dict(raw, spec)
        _write_config(path, raw)
        outcome = reloader.reload("replay")
        if outcome.result != "ok":
            raise RuntimeError(f"reload at {spec.at_s:g} s refused: {'; '.join(outcome.errors)}")


def _write_config(path: Path, raw: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def run_replay(sc: Scenario, run_dir: Path, *, seed: int | None = None, scale: float = 1.0) -> ReplayResult:
    """Replay ``sc`` (already scaled by ``scale``) into ``run_dir``; return the request log's SHA-256."""
    seed = sc.seed if seed is None else seed
    run_id = f"{sc.name}-replay-s{seed}" + (f"-x{scale:g}" if scale != 1.0 else "")
    resolved = sc.resolved(scale=scale, mode="replay", seed=seed)
    write_json(run_dir / "resolved_scenario.json", resolved)
    wall = time.perf_counter()
    log_path = run_dir / "gateway.log"
    loop = VirtualTimeLoop()
    try:
        with log_path.open("w") as log, contextlib.redirect_stderr(log):
            out = loop.run_until_complete(_replay(sc, seed, run_dir, run_id))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    wall = time.perf_counter() - wall
    request_log = run_dir / "requests.jsonl"
    sha = sha256_of(request_log)
    records = request_log.read_bytes().count(b"\n") if request_log.exists() else 0
    with log_path.open("rb") as f:
        events = events_from_log(f)
    write_events(run_dir / "events.jsonl", events + timeline_events(resolved, out["started_at"]))
    meta = {
        "scenario": sc.name,
        "mode": "replay",
        "run_id": run_id,
        "seed": seed,
        "scale": scale,
        "started_at": out["started_at"],
        "duration_s": sc.duration_s,
        "virtual_s": round(out["virtual_s"], 6),
        "wall_s": round(wall, 3),
        "request_log_sha256": sha,
        "records": records,
        "client_status": out["status"],
        "determinism": "replay: every outcome follows the seed; the same seed gives the same request log",
    }
    write_json(run_dir / "run.json", meta)
    return ReplayResult(sc.name, seed, run_dir, sha, records, len(out["client"]), out["status"], out["virtual_s"], wall)
