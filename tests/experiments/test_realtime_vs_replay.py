"""Replay and real time tell the same story.

The same scenario and seed, compressed, run once in virtual time (one process) and once in real time (processes,
locust). Real time adds OS scheduling noise on a shared machine, so the two are compared on what does not depend
on how fast the machine is: how many requests there were, and the order and counts of what happened to them.

* openai-outage: every arrival is one request in both; in both the openai breaker opens, and only after an
  upstream call to openai failed; no call reaches openai while its breaker is open; at least half the requests
  whose first choice failed are answered by another provider (the scenario's own expectation). In real time the
  two gateway workers share the breaker through the state store, each at most ``router.breaker.cache_s`` behind.
* overload-shedding: every arrival is one request in both; in both requests are shed, the first of them only
  once the load has risen (after the first request of the overload phase), and the batch consumer (priority 1)
  loses a larger share of its requests than the interactive one (priority 7).

The scales are the smallest that still show each story (the outage window still opens the breaker, the overload
still sheds) while keeping each test under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from experiments.replay import run_replay
from experiments.scenario import scaled
from experiments.scenario_files import load_scenario
from experiments.workload import arrivals
from gateway.settings.router import BreakerSettings
from reports.load import NOT_A_CALL, load_run
from reports.resilience import breaker_intervals, calls_while_open, failover


def outage_story(run_dir: Path, grace_s: float = 0.0) -> dict[str, Any]:
    run = load_run(run_dir)
    req, att, tr = run.requests, run.attempts, run.transitions
    openai = att.filter((pl.col("provider") == "openai") & ~pl.col("outcome").is_in(NOT_A_CALL))
    opened = tr.filter((pl.col("provider") == "openai") & (pl.col("to") == "open"))["t"]
    end = float(att["t"].max() or 0.0) + 1.0  # type: ignore[arg-type]  # polars types min()/max() as any literal
    return {
        "requests": req.height,
        "first_failed_call": openai.filter(pl.col("outcome") != "ok")["t"].min(),
        "first_opened": opened.min(),
        "calls_while_open": calls_while_open(att, breaker_intervals(tr, end), "openai", grace_s),
        "failover_share": failover(req)["failover_share"],
    }


def shedding_story(run_dir: Path, overload_ids: set[str]) -> dict[str, Any]:
    req = load_run(run_dir).requests.with_columns(
        arrival=pl.col("request_id").str.replace(r"-\d+$", ""), shed=pl.col("outcome") == "shed"
    )
    by_consumer = req.group_by("consumer").agg(pl.col("shed").mean().alias("share"))
    order = req.sort("ts_arrival")["arrival"].to_list()
    first_shed = req.filter(pl.col("shed")).sort("ts_arrival")["arrival"].to_list()[:1]
    first_overload = next((i for i, a in enumerate(order) if a in overload_ids), None)
    return {
        "requests": req.height,
        "shed": int(req["shed"].sum()),
        "first_shed_position": order.index(first_shed[0]) if first_shed else None,
        "first_overload_position": first_overload,
        "shed_share": dict(by_consumer.iter_rows()),
    }


def _both(tmp_path: Path, name: str, scale: float) -> tuple[Any, Path, Path]:
    from experiments.realtime import run_realtime

    sc = scaled(load_scenario(name), scale)
    (tmp_path / "replay").mkdir()
    run_replay(sc, tmp_path / "replay", scale=scale)
    run_realtime(sc, tmp_path / "real", scale=scale, progress=False)
    return sc, tmp_path / "replay", tmp_path / "real"


@pytest.mark.processes
def test_replay_and_real_time_agree_on_the_outage_story(tmp_path: Path) -> None:
    sc, replay_dir, real_dir = _both(tmp_path, "openai-outage", 0.1)
    # In real time the gateway runs two workers, which share the breaker's state through the state store and each
    # read it at most router.breaker.cache_s late: a call a worker starts that soon after the other opened the
    # breaker is the documented propagation, not a call let through an open breaker.
    replay, real = outage_story(replay_dir), outage_story(real_dir, grace_s=BreakerSettings().cache_s)
    n = len(arrivals(sc, sc.seed))
    for s in (replay, real):
        assert s["requests"] == n, (replay, real)  # every arrival, once (no client retries in this scenario)
        assert s["first_failed_call"] is not None and s["first_opened"] is not None, (replay, real)
        assert s["first_failed_call"] <= s["first_opened"], (replay, real)  # opened by failures
        assert s["calls_while_open"] == 0, (replay, real)
        assert s["failover_share"] is not None and s["failover_share"] >= 0.5, (replay, real)


@pytest.mark.processes
def test_replay_and_real_time_agree_on_the_shedding_story(tmp_path: Path) -> None:
    """Overload runs at 0.2: at 0.1 its ~110 requests shed too few to compare the consumers."""
    sc, replay_dir, real_dir = _both(tmp_path, "overload-shedding", 0.2)
    plan = arrivals(sc, sc.seed)
    overload = next(p for p in sc.load.phases if p.name == "overload")
    overload_ids = {f"c{a.idx:06d}" for a in plan if a.t >= overload.start_s}
    replay, real = shedding_story(replay_dir, overload_ids), shedding_story(real_dir, overload_ids)
    for s in (replay, real):
        assert s["requests"] == len(plan), (replay, real)  # every arrival, once
        assert s["shed"] > 0, (replay, real)
        assert s["first_shed_position"] >= s["first_overload_position"], (replay, real)  # once the load rose
        assert s["shed_share"]["batch"] > s["shed_share"]["interactive"], (replay, real)  # lower priority first
