"""``python -m experiments.loadtest`` and the project's locustfile.

The command line is checked as data; the locustfile runs for real (headless locust in its own process, never in
the test process: locust monkey-patches with gevent) against a simulator scripted to answer 503s, cut streams
with an error event and end streams without ``[DONE]``, so each failure kind must show up in locust's CSVs.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from experiments.loadtest import DEFAULT_KEY, DEFAULT_URL, command, parser
from experiments.procs import free_port

ROOT = Path(__file__).resolve().parents[2]


def _cmd(*argv: str) -> list[str]:
    return command(parser().parse_args(list(argv)))


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_defaults_target_make_serve_with_the_web_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAULTLINE_API_KEY", raising=False)
    cmd = _cmd()
    assert cmd[1:3] == ["-m", "locust"]
    assert _opt(cmd, "--host") == DEFAULT_URL
    assert _opt(cmd, "--api-key") == DEFAULT_KEY
    assert _opt(cmd, "-f").endswith("experiments/locustfile.py")
    assert "--headless" not in cmd and "--users" not in cmd


def test_every_listener_binds_the_loopback_unless_told_otherwise() -> None:
    assert _opt(_cmd(), "--web-host") == "127.0.0.1"
    assert _opt(_cmd("--headless", "--workers", "2"), "--master-bind-host") == "127.0.0.1"
    assert _opt(_cmd("--", "--master"), "--master-bind-host") == "127.0.0.1"
    assert "--web-host" not in _cmd("--headless") and "--master-bind-host" not in _cmd("--headless")
    wide = _cmd("--bind", "0.0.0.0", "--", "--master")
    assert (_opt(wide, "--web-host"), _opt(wide, "--master-bind-host")) == ("0.0.0.0", "0.0.0.0")


def test_headless_fills_in_users_rate_and_run_time() -> None:
    cmd = _cmd("--headless", "--url", "http://gw:9000/", "--key", "k-123", "--users", "7")
    assert "--headless" in cmd
    assert (_opt(cmd, "--host"), _opt(cmd, "--api-key")) == ("http://gw:9000", "k-123")
    assert (_opt(cmd, "--users"), _opt(cmd, "--spawn-rate"), _opt(cmd, "--run-time")) == ("7", "2", "60s")


def test_key_from_the_environment_and_extra_locust_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTLINE_API_KEY", "from-env")
    cmd = _cmd("--stream-share", "1", "--", "--master", "--expect-workers", "2")
    assert _opt(cmd, "--api-key") == "from-env"
    assert _opt(cmd, "--stream-share") == "1.0"
    assert cmd[-3:] == ["--master", "--expect-workers", "2"]


def test_stream_share_out_of_range_is_refused() -> None:
    from experiments.loadtest import main

    with pytest.raises(SystemExit) as exc:
        main(["--stream-share", "1.5"])
    assert exc.value.code == 2


PROFILE = """\
base: instant
timeline:
  - {type: outage, from-request: 0, to-request: 6, mode: 503}
  - {type: slow_stream, from-request: 6, to-request: 40, cut-after-tokens: 3, cut-mode: error}
  - {type: slow_stream, from-request: 40, to-request: 80, cut-after-tokens: 3, cut-mode: eof}
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.processes
def test_locustfile_times_first_tokens_and_flags_every_failure_kind(tmp_path: Path) -> None:
    profile = tmp_path / "faulty.yaml"
    profile.write_text(PROFILE)
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators", "--profile", str(profile), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        prefix = tmp_path / "lt"
        argv = ["--url", f"http://127.0.0.1:{port}", "--headless", "--users", "4", "--spawn-rate", "4"]
        argv += ["--run-time", "4s", "--stream-share", "0.7", "--pacing", "0.05", "--", "--csv", str(prefix)]
        argv += ["--only-summary", "--exit-code-on-error", "0"]
        done = subprocess.run(
            [sys.executable, "-m", "experiments.loadtest", *argv], capture_output=True, timeout=50, check=False
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    stats = {(r["Type"], r["Name"]): r for r in _rows(Path(f"{prefix}_stats.csv"))}
    assert {("POST", "chat"), ("POST", "chat stream"), ("TTFT", "ttft")} <= set(stats)
    assert int(stats[("TTFT", "ttft")]["Request Count"]) > 0
    assert stats[("TTFT", "ttft")]["Failure Count"] == "0"
    failures = {(r["Name"], r["Error"]) for r in _rows(Path(f"{prefix}_failures.csv"))}
    errors = {e for _, e in failures}
    assert any("HTTP 503" in e for e in errors), failures
    assert any("stream: error event" in e for n, e in failures if n == "chat stream"), failures
    assert any("stream: ended without [DONE]" in e for n, e in failures if n == "chat stream"), failures


def test_workers_run_locusts_distributed_mode_on_this_machine() -> None:
    cmd = _cmd("--headless", "--workers", "3")
    assert _opt(cmd, "--processes") == "3"
    assert _opt(cmd, "--master-bind-port") == _opt(cmd, "--master-port") != "5557"  # its own port
    assert "--processes" not in _cmd("--headless")


def test_a_scenario_sets_pacing_mix_and_shape_instead_of_users_and_run_time() -> None:
    from experiments.scenario_files import load_scenario

    sc = load_scenario("noisy-neighbor")
    cmd = _cmd("--headless", "--scenario", "noisy-neighbor")
    assert _opt(cmd, "-f").split(",")[1].endswith("experiments/locust_shape.py")
    assert _opt(cmd, "--scenario") == "noisy-neighbor"
    assert float(_opt(cmd, "--pacing")) == sc.load.pacing_s
    assert float(_opt(cmd, "--stream-share")) == sc.request_mix.stream_share
    assert _opt(cmd, "--model") == sc.request_mix.model
    assert not {"--users", "--spawn-rate", "--run-time"} & set(cmd)


@pytest.mark.parametrize(
    "argv", [["--scenario", "no-such-scenario"], ["--scenario", "baseline", "--users", "3"], ["--workers", "-1"]]
)
def test_bad_scenario_or_workers_are_refused(argv: list[str]) -> None:
    from experiments.loadtest import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_the_scenario_shape_follows_the_arrival_rate() -> None:
    from experiments.loadplan import paced_users
    from experiments.scenario_files import parse_scenario

    raw = yaml.safe_load((ROOT / "experiments" / "scenarios" / "baseline.yaml").read_text())
    raw["load"] = {
        "pacing_s": 2.0,
        "phases": [
            {"name": "a", "start_s": 0, "end_s": 60, "rps": 5},
            {"name": "b", "start_s": 60, "end_s": 120, "rps": 0},
        ],
        "spikes": [{"start_s": 30, "end_s": 40, "rps": 10.5}],
    }
    sc = parse_scenario(raw)
    assert [paced_users(sc, t) for t in (0, 35, 59.9, 60, 119)] == [10, 31, 10, 0, 0]


def _start_instant_simulator(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators", "--profile", str(ROOT / "simulators" / "profiles" / "instant.yaml"),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return sim, port
        except OSError:
            time.sleep(0.05)
    sim.terminate()
    raise AssertionError("the simulator did not start")


@pytest.mark.processes
def test_a_master_with_two_workers_counts_what_the_workers_sent(tmp_path: Path) -> None:
    """Load for 3 s, then none for 5 s (more than locust's 3 s between a worker's reports), so every worker has
    reported all it sent before the master stops; the master's totals must then be the workers' sum."""
    raw = yaml.safe_load((ROOT / "experiments" / "scenarios" / "baseline.yaml").read_text())
    raw["duration_s"] = 8
    raw["load"] = {
        "pacing_s": 0.2,
        "phases": [
            {"name": "load", "start_s": 0, "end_s": 3, "rps": 20},
            {"name": "idle", "start_s": 3, "end_s": 8, "rps": 0},
        ],
    }
    scenario = tmp_path / "short.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    sim, port = _start_instant_simulator(tmp_path)
    counts = tmp_path / "counts"
    counts.mkdir()
    try:
        argv = ["--url", f"http://127.0.0.1:{port}", "--headless", "--scenario", str(scenario), "--workers", "2"]
        argv += ["--", "--only-summary", "--exit-code-on-error", "0"]
        env = {**os.environ, "FAULTLINE_LOCUST_COUNTS": str(counts)}
        done = subprocess.run(
            [sys.executable, "-m", "experiments.loadtest", *argv], capture_output=True, timeout=90, check=False, env=env
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    workers = [json.loads(p.read_text()) for p in sorted(counts.glob("worker-*.json"))]
    master = json.loads((counts / "master.json").read_text())
    assert len(workers) == 2 and all(w["requests"] > 0 for w in workers)
    assert master == {"requests": sum(w["requests"] for w in workers), "failures": sum(w["failures"] for w in workers)}
