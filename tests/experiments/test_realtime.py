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

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from experiments.loadplan import user_plan
from experiments.procs import group_members
from experiments.scenario import load_scenario, scaled

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


def test_user_plan_follows_the_rate_and_never_drops():
    sc = load_scenario("overload-shedding")
    plan = user_plan(sc)
    times = [t for t, _ in plan]
    users = [n for _, n in plan]
    assert times == sorted(times) and users == sorted(users)
    assert users[0] == 4 * sc.load.pacing_s  # 4 rps nominal
    assert users[-1] == 8 * sc.load.pacing_s  # 8 rps overload
    assert next(t for t, n in plan if n == users[-1]) >= 40 - 2  # raised just before the overload phase


@pytest.mark.processes
def test_real_time_run_writes_the_run_directory_and_stops_every_process(tmp_path):
    from experiments.realtime import run_realtime

    scale = 0.1  # redis-outage: 12 s, the store killed at 4 s and restarted at 7 s
    sc = scaled(load_scenario("redis-outage"), scale)
    run_dir = tmp_path / "run"
    res = run_realtime(sc, run_dir, scale=scale, progress=False)

    assert_nothing_left(run_dir)
    for name in ("resolved_scenario.json", "gateway.yaml", "gateway.log", "sim-openai.log", "sim-vllm.log"):
        assert (run_dir / name).exists(), name
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html"):
        assert (run_dir / name).exists(), name
    records = [orjson.loads(line) for line in (run_dir / "requests.jsonl").read_bytes().splitlines()]
    assert records and res.records == len(records)
    assert {r["run_id"] for r in records} == {"redis-outage-real-s14-x0.1"}
    client = [orjson.loads(line) for line in (run_dir / "client.jsonl").read_bytes().splitlines()]
    assert sum(res.client_status.values()) == len(client) == res.client_requests > 0
    answered = {c["id"] for c in client if c["status"]}
    assert answered <= {r["request_id"] for r in records}  # the gateway logged every call it answered

    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert (meta["mode"], meta["seed"], meta["scale"], meta["interrupted"]) == ("real", 14, scale, False)
    assert min(r["ts_arrival"] for r in records) >= meta["started_at"] - 0.5
    assert "seed" in meta["determinism"]

    events = [orjson.loads(line) for line in (run_dir / "events.jsonl").read_bytes().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("store_stopped") == 1 and kinds.count("store_restarted") == 1
    assert {"fault_start", "fault_end", "phase"} <= set(kinds)

    scrapes = sorted((run_dir / "metrics").glob("*.prom"))
    assert len(scrapes) >= 3
    families = {f.name for f in text_string_to_metric_families((run_dir / "metrics" / "final.prom").read_text())}
    assert any(name.startswith("faultline_") for name in families)


RUNNER = """
import sys
from pathlib import Path
from experiments.realtime import run_realtime
from experiments.scenario import load_scenario, scaled
run_realtime(scaled(load_scenario("baseline"), 0.5), Path(sys.argv[1]), scale=0.5)
"""


@pytest.mark.processes
@pytest.mark.parametrize(
    ("sig", "when"),
    [(signal.SIGINT, "gateway.yaml"), (signal.SIGTERM, ".t0")],
    ids=["SIGINT-while-starting", "SIGTERM-under-load"],
)
def test_an_interrupted_run_stops_every_process(tmp_path, sig, when):
    """Ctrl-C while the processes are starting, SIGTERM while the load runs: either way nothing is left."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(run_dir)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(600):  # until the run reaches the point: the gateway spawned, or the load started
            if (run_dir / when).exists() or runner.poll() is not None:
                break
            time.sleep(0.05)
        assert runner.poll() is None, runner.stderr.read() if runner.stderr else ""
        time.sleep(0.5)
        assert run_processes(run_dir), "no child processes while the run is going"
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=45)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode != 0
    assert "stopping every process (interrupted)" in err
    assert_nothing_left(run_dir)
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert meta["interrupted"] is True
