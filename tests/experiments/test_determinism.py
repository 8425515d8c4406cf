"""Replay is deterministic: every shipped scenario, replayed twice with its seed, gives a byte-identical request
log (the same SHA-256); another seed gives another log.

Replays run at ``SCALE`` of each scenario's length (every load, fault and expectation window compressed alike;
the gateway's own reaction times are not) so the whole module stays well under three minutes on one core.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.replay import ReplayResult, run_replay
from experiments.rundir import sha256_of
from experiments.scenario import scaled
from experiments.scenario_files import list_scenarios, load_scenario

SCALE = 0.25
EMPTY_SHA = sha256_of(Path("/nonexistent"))


def _replay(name: str, run_dir: Path, seed: int | None = None) -> ReplayResult:
    run_dir.mkdir()
    return run_replay(scaled(load_scenario(name), SCALE), run_dir, seed=seed, scale=SCALE)


@pytest.mark.parametrize("name", list_scenarios())
def test_same_seed_gives_a_byte_identical_request_log(name: str, tmp_path: Path) -> None:
    a = _replay(name, tmp_path / "a")
    b = _replay(name, tmp_path / "b")
    assert a.records > 0 and a.sha256 != EMPTY_SHA
    assert a.sha256 == b.sha256 == sha256_of(tmp_path / "a" / "requests.jsonl")
    assert (a.records, a.client_status) == (b.records, b.client_status)
    assert (tmp_path / "a" / "client.jsonl").read_bytes() == (tmp_path / "b" / "client.jsonl").read_bytes()
    assert (tmp_path / "a" / "events.jsonl").read_bytes() == (tmp_path / "b" / "events.jsonl").read_bytes()


@pytest.mark.parametrize("name", ["openai-outage", "noisy-neighbor"])
def test_another_seed_gives_another_request_log(name: str, tmp_path: Path) -> None:
    own = load_scenario(name).seed
    a = _replay(name, tmp_path / "a")
    b = _replay(name, tmp_path / "b", seed=own + 1)
    assert a.seed == own and b.seed == own + 1
    assert a.records > 0 and b.records > 0
    assert a.sha256 != b.sha256
