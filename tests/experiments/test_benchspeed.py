"""The speed loop of make bench (experiments/benchspeed.py)."""

from __future__ import annotations

import os

import pytest

from experiments import benchspeed


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity (Linux)")
def test_the_speed_loop_is_timed_on_each_core_and_the_process_goes_back_where_it_was() -> None:
    home = os.sched_getaffinity(0)
    cores = sorted(home)[:2]
    timings: dict[str, list[float]] = {}
    benchspeed.time_cpu_loop(cores, timings)
    benchspeed.time_cpu_loop(cores, timings)
    assert sorted(timings) == sorted(str(c) for c in cores)
    assert all(len(ms) == 2 and min(ms) > 0 for ms in timings.values())
    assert os.sched_getaffinity(0) == home


def test_without_pinning_the_loop_is_timed_where_the_process_runs() -> None:
    timings: dict[str, list[float]] = {}
    benchspeed.time_cpu_loop([None], timings)
    assert list(timings) == ["any"] and len(timings["any"]) == 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity (Linux)")
def test_a_core_it_may_not_run_on_still_leaves_the_process_where_it_was() -> None:
    home = os.sched_getaffinity(0)
    with pytest.raises(OSError):
        benchspeed.time_cpu_loop([sorted(home)[0], 10_000], {})
    assert os.sched_getaffinity(0) == home
