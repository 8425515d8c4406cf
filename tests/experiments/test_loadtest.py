"""``python -m experiments.loadtest`` and the project's locustfile.

The command line is checked as data; the locustfile runs for real (headless locust in its own process, never in
the test process: locust monkey-patches with gevent) against a simulator scripted to answer 503s, cut streams
with an error event and end streams without ``[DONE]``, so each failure kind must show up in locust's CSVs.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments.loadtest import DEFAULT_KEY, DEFAULT_URL, command, parser
from experiments.procs import free_port


def _cmd(*argv: str) -> list[str]:
    return command(parser().parse_args(list(argv)))


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_defaults_target_make_serve_with_the_web_ui(monkeypatch):
    monkeypatch.delenv("FAULTLINE_API_KEY", raising=False)
    cmd = _cmd()
    assert cmd[1:3] == ["-m", "locust"]
    assert _opt(cmd, "--host") == DEFAULT_URL
    assert _opt(cmd, "--api-key") == DEFAULT_KEY
    assert _opt(cmd, "-f").endswith("experiments/locustfile.py")
    assert "--headless" not in cmd and "--users" not in cmd


def test_headless_fills_in_users_rate_and_run_time():
    cmd = _cmd("--headless", "--url", "http://gw:9000/", "--key", "k-123", "--users", "7")
    assert "--headless" in cmd
    assert (_opt(cmd, "--host"), _opt(cmd, "--api-key")) == ("http://gw:9000", "k-123")
    assert (_opt(cmd, "--users"), _opt(cmd, "--spawn-rate"), _opt(cmd, "--run-time")) == ("7", "2", "60s")


def test_key_from_the_environment_and_extra_locust_arguments(monkeypatch):
    monkeypatch.setenv("FAULTLINE_API_KEY", "from-env")
    cmd = _cmd("--stream-share", "1", "--", "--master", "--expect-workers", "2")
    assert _opt(cmd, "--api-key") == "from-env"
    assert _opt(cmd, "--stream-share") == "1.0"
    assert cmd[-3:] == ["--master", "--expect-workers", "2"]


def test_stream_share_out_of_range_is_refused():
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
def test_locustfile_times_first_tokens_and_flags_every_failure_kind(tmp_path):
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
