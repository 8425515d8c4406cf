"""Replay and real time tell the same story.

The same scenario and seed, compressed, run once in virtual time (one process) and once in real time (processes,
locust); the headline figures of both request logs must agree within stated tolerances:

* availability (good / valid requests, ``reports.slo``): within 0.05;
* failover share (requests whose first attempt failed and that were answered by another provider,
  ``reports.resilience.failover``): within 0.15 — both None when a scenario has nothing to fail over to;
* shed share (requests answered with a shed 503): within 0.10.

Real time adds OS scheduling noise on a shared machine (a few requests shift between windows or get shed or not),
hence tolerances rather than equality. The scales are the smallest that still show each story (the outage
window still opens the breaker, the overload still sheds) while keeping each test under a minute; overload runs at
0.2 because at 0.1 its ~110 requests make six shed requests more or less a 0.05 swing in availability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from experiments.replay import run_replay
from experiments.scenario import scaled
from experiments.scenario_files import load_scenario
from reports.load import load_run
from reports.resilience import failover
from reports.slo import GOOD, VALID

AVAILABILITY_TOL = 0.05
FAILOVER_TOL = 0.15
SHED_TOL = 0.10


def story(run_dir: Path) -> dict[str, Any]:
    req = load_run(run_dir).requests
    valid, good = req.select(VALID.sum().alias("v"), GOOD.sum().alias("g")).row(0)
    return {
        "requests": req.height,
        "availability": good / valid if valid else None,
        "failover_share": failover(req)["failover_share"],
        "shed_share": req.filter(pl.col("outcome") == "shed").height / req.height if req.height else None,
    }


@pytest.mark.processes
@pytest.mark.parametrize(
    ("name", "scale"),
    [("openai-outage", 0.1), ("overload-shedding", 0.2)],
)
def test_replay_and_real_time_agree_on_the_story(tmp_path: Path, name: str, scale: float) -> None:
    from experiments.realtime import run_realtime

    sc = scaled(load_scenario(name), scale)
    (tmp_path / "replay").mkdir()
    run_replay(sc, tmp_path / "replay", scale=scale)
    run_realtime(sc, tmp_path / "real", scale=scale, progress=False)
    replay, real = story(tmp_path / "replay"), story(tmp_path / "real")

    assert real["requests"] > 0 and replay["requests"] > 0
    assert abs(real["availability"] - replay["availability"]) <= AVAILABILITY_TOL, (replay, real)
    if replay["failover_share"] is None:
        assert real["failover_share"] is None, (replay, real)
    else:
        assert real["failover_share"] is not None, (replay, real)
        assert abs(real["failover_share"] - replay["failover_share"]) <= FAILOVER_TOL, (replay, real)
    assert abs(real["shed_share"] - replay["shed_share"]) <= SHED_TOL, (replay, real)
    # the story itself, in both modes
    if name == "openai-outage":
        assert min(replay["failover_share"], real["failover_share"]) >= 0.5
    else:
        assert min(replay["shed_share"], real["shed_share"]) > 0
