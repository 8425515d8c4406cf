"""Real-time runs: real processes on loopback, locust sending the seeded arrivals.

Every child of a run carries ``FAULTLINE_RUN_DIR=<run dir>`` in its environment and records its process group in
``run.json``; "no process left behind" is checked both ways through /proc. Each test stays well under a minute;
nothing asserts a duration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from experiments.loadplan import user_plan
from experiments.procs import group_members
from experiments.scenario_files import load_scenario, parse_scenario
from experiments.workload import arrivals

ROOT = Path(__file__).resolve().parents[2]


def run_processes(run_dir: Path) -> list[int]:
    """PIDs of live processes whose environment marks them as children of the run in ``run_dir``."""
    marker = f"FAULTLINE_RUN_DIR={run_dir.resolve()}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in env and state != b"Z":
            out.append(int(entry))
    return out


def assert_nothing_left(run_dir: Path) -> None:
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert meta["process_groups"], "the run recorded no process group"
    for _ in range(100):  # a killed process may take a moment to be reaped by init
        left = run_processes(run_dir) + [p for g in meta["process_groups"] for p in group_members(g)]
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes left behind: {left}")


def test_user_plan_follows_the_rate_and_never_drops() -> None:
    sc = load_scenario("overload-shedding")
    plan = user_plan(sc)
    times = [t for t, _ in plan]
    users = [n for _, n in plan]
    assert times == sorted(times) and users == sorted(users)
    assert users[0] == 4 * sc.load.pacing_s  # 4 rps nominal
    assert users[-1] == max(p.rps for p in sc.load.phases) * sc.load.pacing_s  # the overload phase's rate
    assert next(t for t, n in plan if n == users[-1]) >= 40 - 2  # raised just before the overload phase


# 12 s: both upstreams answer 503 from 2 s to 5 s (the simulators' timelines must start at the run's origin),
# the state store is killed at 6 s and restarted at 9 s, and the batch client re-sends 502/503s twice.
SMOKE: dict[str, Any] = {
    "name": "realtime-smoke",
    "description": "Both upstreams fail for three seconds, then the state store dies for three more.",
    "seed": 3,
    "duration_s": 12,
    "load": {"phases": [{"name": "steady", "start_s": 0, "end_s": 12, "rps": 5}]},
    "consumers": [
        {"name": "app", "key": "fl-app-7d1c55aa90e1", "share": 0.6, "priority": 5},
        {
            "name": "batch",
            "key": "fl-batch-2b9e0f4c63d8",
            "share": 0.4,
            "priority": 1,
            "client": {"retries": 2, "retry_on": [502, 503], "backoff_s": 0.2},
        },
    ],
    "request_mix": {"stream_share": 0.5, "max_tokens": {"mean": 24, "sd": 8, "min": 8, "max": 64}},
    "upstreams": [
        {
            "name": "openai",
            "flavour": "openai",
            "model": "gpt-4o-mini",
            "profile": "openai-gpt-4o-mini",
            "timeline": [{"type": "outage", "start_s": 2, "end_s": 5, "mode": 503}],
        },
        {
            "name": "vllm",
            "flavour": "vllm",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "profile": "vllm-8b-h100",
            "timeline": [{"type": "outage", "start_s": 2, "end_s": 5, "mode": 503}],
        },
    ],
    "gateway": {"quota": {"failure_policy": "open", "replicas": 2}, "router": {"breaker": {"cooloff_s": 1.0}}},
    "faults": [{"upstream": "state_store", "kind": "outage", "start_s": 6, "end_s": 9}],
}


@pytest.mark.processes
def test_real_time_run_writes_the_run_directory_and_stops_every_process(tmp_path: Path) -> None:
    from experiments.realtime import run_realtime

    sc = parse_scenario(SMOKE)
    run_dir = tmp_path / "run"
    res = run_realtime(sc, run_dir, progress=False)

    assert_nothing_left(run_dir)
    for name in ("resolved_scenario.json", "gateway.yaml", "gateway.log", "sim-openai.log", "sim-vllm.log"):
        assert (run_dir / name).exists(), name
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html"):
        assert (run_dir / name).exists(), name
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert (meta["mode"], meta["seed"], meta["scale"], meta["interrupted"]) == ("real", 3, 1.0, False)
    assert "seed" in meta["determinism"]
    t0 = meta["started_at"]

    records = [orjson.loads(line) for line in (run_dir / "requests.jsonl").read_bytes().splitlines()]
    assert records and res.records == len(records)
    assert {r["run_id"] for r in records} == {"realtime-smoke-real-s3"}
    assert min(r["ts_arrival"] for r in records) >= t0 - 0.5

    client = [orjson.loads(line) for line in (run_dir / "client.jsonl").read_bytes().splitlines()]
    assert sum(res.client_status.values()) == len(client) == res.client_requests > 0
    sent = sorted(c["id"].rsplit("-", 1)[0] for c in client if c["id"].endswith("-0"))
    assert sent == sorted(f"c{a.idx:06d}" for a in arrivals(sc, sc.seed))  # every arrival sent, once
    answered = {c["id"] for c in client if c["status"]}
    assert answered <= {r["request_id"] for r in records}  # the gateway logged every call it answered
    by_id = {c["id"]: c for c in client}
    resent = [c for c in client if not c["id"].endswith("-0")]
    assert resent and {c["consumer"] for c in resent} == {"batch"}
    for c in resent:  # a re-send only follows a retryable status
        arrival, attempt = c["id"].rsplit("-", 1)
        assert by_id[f"{arrival}-{int(attempt) - 1}"]["status"] in (502, 503)

    events = [orjson.loads(line) for line in (run_dir / "events.jsonl").read_bytes().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("store_stopped") == 1 and kinds.count("store_restarted") == 1
    # The upstreams' outage, in the order of arrivals: the run starts with answers (the simulators' timelines
    # start at the run's origin, not before it), then requests fail, and that happens before the state store is
    # stopped, as scheduled.
    stopped = next(e["ts"] for e in events if e["event"] == "store_stopped")
    outcomes = [r["outcome"] for r in sorted(records, key=lambda r: r["ts_arrival"])]
    first_failure = next(i for i, o in enumerate(outcomes) if o != "ok")
    assert first_failure > 0 and outcomes[:first_failure] == ["ok"] * first_failure
    assert any(r["outcome"] != "ok" and r["ts_arrival"] < stopped for r in records)
    runner_own = {"fault_start", "fault_end", "phase", "store_stopped", "store_restarted"}
    assert runner_own <= set(kinds)
    assert set(kinds) - runner_own, "no event from the gateway's log (the store outage alone logs some)"
    assert all(e["from"] and e["to"] for e in events if e["event"] == "breaker_transition")

    scrapes = sorted((run_dir / "metrics").glob("*.prom"))
    assert len(scrapes) >= 3
    families = {f.name for f in text_string_to_metric_families((run_dir / "metrics" / "final.prom").read_text())}
    assert any(name.startswith("faultline_") for name in families)


RUNNER = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as at a terminal: a background job ignores SIGINT
from pathlib import Path
from experiments.realtime import run_realtime
from experiments.scenario import scaled
from experiments.scenario_files import load_scenario
run_realtime(scaled(load_scenario("baseline"), 0.5), Path(sys.argv[1]), scale=0.5)
"""


@pytest.mark.processes
@pytest.mark.timeout(300)  # starting and stopping a run's processes on a loaded machine: order matters, not speed
@pytest.mark.parametrize(
    ("sig", "when"),
    [(signal.SIGINT, "gateway.yaml"), (signal.SIGTERM, ".t0")],
    ids=["SIGINT-while-starting", "SIGTERM-under-load"],
)
def test_an_interrupted_run_stops_every_process(tmp_path: Path, sig: signal.Signals, when: str) -> None:
    """Ctrl-C while the processes are starting, SIGTERM while the load runs: either way nothing is left."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(run_dir)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        # Each wait is for an event, however long a busy machine takes to get there: the test's timeout bounds all.
        while not ((run_dir / when).exists() or runner.poll() is not None):  # the gateway spawned / the load started
            time.sleep(0.05)
        assert runner.poll() is None, runner.stderr.read() if runner.stderr else ""
        while not (run_processes(run_dir) or runner.poll() is not None):  # its children, spawned right after
            time.sleep(0.05)
        assert run_processes(run_dir), "no child processes while the run is going"
        runner.send_signal(sig)
        _, err = runner.communicate()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if runner.stderr is not None:
            runner.stderr.close()
    assert runner.returncode != 0
    assert "stopping every process (interrupted)" in err
    assert_nothing_left(run_dir)
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert meta["interrupted"] is True
    client_log = run_dir / "client.jsonl"  # none when interrupted before the load started
    calls = len(client_log.read_bytes().splitlines()) if client_log.exists() else 0
    assert sum(meta["client_status"].values()) == calls


@pytest.mark.processes
def test_a_distributed_run_sends_every_arrival_once_across_its_workers(tmp_path: Path) -> None:
    """locust as a master and two worker processes: each worker sends its share, together every arrival once,
    and the master's statistics add up the workers' calls."""
    import csv

    from experiments.realtime import run_realtime

    raw = {k: v for k, v in SMOKE.items() if k != "faults"}
    raw["duration_s"] = 6
    raw["load"] = {"phases": [{"name": "steady", "start_s": 0, "end_s": 6, "rps": 5}]}
    raw["upstreams"] = [{k: v for k, v in u.items() if k != "timeline"} for u in SMOKE["upstreams"]]
    sc = parse_scenario(raw)
    run_dir = tmp_path / "run"
    res = run_realtime(sc, run_dir, progress=False, load_workers=2)

    assert_nothing_left(run_dir)
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert (meta["load_workers"], meta["interrupted"]) == (2, False)
    client = [orjson.loads(line) for line in (run_dir / "client.jsonl").read_bytes().splitlines()]
    first_attempts = [c["id"].rsplit("-", 1)[0] for c in client if c["id"].endswith("-0")]
    expected = {f"c{a.idx:06d}" for a in arrivals(sc, sc.seed)}
    exceptions = (run_dir / "locust_exceptions.csv").read_text()
    lost, twice = expected - set(first_attempts), len(first_attempts) - len(set(first_attempts))
    assert (lost, twice) == (set(), 0), exceptions  # each arrival sent once, none lost, none twice
    assert set(first_attempts) == expected
    assert len({c["id"] for c in client}) == len(client) == res.client_requests
    with (run_dir / "locust_stats.csv").open() as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    calls = int(total["Request Count"])
    ttft = sum(1 for c in client if c["ttft_s"] is not None)
    assert calls == len(client) + ttft  # the master's totals: every worker's calls (and their TTFT samples)
