"""``python -m experiments``: list, run (replay, at a compressed scale) and all, and their exit statuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import experiments.__main__ as cli
from experiments.scenario_files import list_scenarios, load_scenario

SCALE = ["--scale", "0.1", "--no-charts"]


def test_list_names_every_scenario_with_the_first_sentence_of_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_scenarios()
    for line in lines:
        name, text = line.split(maxsplit=1)
        assert text == cli.first_sentence(load_scenario(name).description)
        assert text.endswith(".") and "\n" not in text


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("One. Two.", "One."),
        ("TTFT 0.8 s at 50, then\n  more. And so on.", "TTFT 0.8 s at 50, then more."),
        ("No full stop", "No full stop"),
    ],
)
def test_first_sentence(text: str, sentence: str) -> None:
    assert cli.first_sentence(text) == sentence


def test_the_run_id_follows_mode_seed_and_scale_only() -> None:
    assert cli.run_id("replay", 7, 1.0) == "replay-s7"
    assert cli.run_id("real", 3, 0.25) == "real-s3-x0.25"


def test_an_unknown_scenario_is_a_usage_error_listing_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "no-such-thing", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no scenario 'no-such-thing'" in err and all(n in err for n in list_scenarios())
    assert not any(tmp_path.iterdir())


def test_run_without_a_scenario_lists_them_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "which scenario?" in err and all(n in err for n in list_scenarios())
    assert not any(tmp_path.iterdir())


def test_every_scenario_command_replays_unless_told_otherwise() -> None:
    """The CLI and the Makefile agree: replay by default, MODE=real for real time, no default scenario."""
    for command in ("run", "all"):
        args = cli.parser().parse_args([command, *(["baseline"] if command == "run" else [])])
        assert args.mode == "replay"
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "MODE ?= replay" in makefile and "SCENARIO ?=" not in makefile
    assert "--mode $(MODE)" in makefile and "$(or $(MODE)" not in makefile


def test_run_replays_into_a_new_run_dir_and_builds_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "baseline", "--mode", "replay", "--runs-dir", str(tmp_path), *SCALE]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "baseline-replay-s1-x0.1"
    meta = json.loads((run_dir / "run.json").read_text())
    assert str(run_dir) in out
    assert f"request log SHA-256: {meta['request_log_sha256']}" in out
    assert f"report: {run_dir / 'report.md'}" in out and (run_dir / "report.md").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"expectations: {len(summary['expectations'])}/{len(summary['expectations'])} held" in out
    assert (meta["mode"], meta["seed"], meta["scale"]) == ("replay", 1, 0.1)

    assert cli.main(["run", "baseline", "--seed", "5", "--runs-dir", str(tmp_path), *SCALE]) == 0
    assert cli.main(["run", "baseline", "--seed", "5", "--runs-dir", str(tmp_path), *SCALE]) == 0
    again = sorted(p.name for p in tmp_path.iterdir())
    assert again == ["baseline-replay-s1-x0.1", "baseline-replay-s5-x0.1", "baseline-replay-s5-x0.1.2"]
    shas = {json.loads((tmp_path / d / "run.json").read_text())["request_log_sha256"] for d in again[1:]}
    assert len(shas) == 1  # same seed, same log


def test_real_mode_without_its_runner_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "experiments.realtime", None)  # makes the import fail
    assert cli.main(["run", "baseline", "--mode", "real", "--runs-dir", str(tmp_path)]) == 2
    assert "real-time mode is not available" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_failed_run_exits_1_and_keeps_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("upstream simulator crashed")

    monkeypatch.setattr(cli, "_execute", broken)
    assert cli.main(["run", "baseline", "--runs-dir", str(tmp_path), *SCALE]) == 1
    assert "run failed: RuntimeError: upstream simulator crashed" in capsys.readouterr().err
    assert (tmp_path / "baseline-replay-s1-x0.1").is_dir()


def test_all_runs_every_scenario_and_ends_with_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "list_scenarios", lambda: ["baseline", "misconfiguration"])
    assert cli.main(["all", "--mode", "replay", "--runs-dir", str(tmp_path), *SCALE]) == 0
    out = capsys.readouterr().out
    table = out[out.index("\nscenario") :].splitlines()
    rows = [line for line in table if line.startswith(("baseline ", "misconfiguration "))]
    assert [r.split()[:2] for r in rows] == [["baseline", "ok"], ["misconfiguration", "ok"]]
    assert "2/2 runs completed" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline-replay-s1-x0.1", "misconfiguration-replay-s15-x0.1"]


def test_load_workers_are_for_real_time_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "baseline", "--load-workers", "2", "--runs-dir", str(tmp_path)]) == 2
    assert "--load-workers (WORKERS=n) is for real-time runs" in capsys.readouterr().err
    assert cli.parser().parse_args(["all", "--mode", "real", "--load-workers", "3"]).load_workers == 3
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert makefile.count("$(if $(WORKERS),--load-workers $(WORKERS))") == 2  # make experiment / experiments
