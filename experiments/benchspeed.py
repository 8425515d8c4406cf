"""The machine's own speed during ``make bench``: a fixed pure-Python loop timed on each core between rounds.

The load average inside a VM does not see a neighbour on its host; a loop that takes longer at one time than at
another on the same core does (the verdict and its sentence: :func:`experiments.benchreport.speed_note`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from experiments.benchreport import SPEED_REPEATS

SPEED_LOOP = 200_000
SETTLE_S = 0.05


def time_cpu_loop(cores: Sequence[int | None], into: dict[str, list[float]]) -> None:
    """Milliseconds a fixed pure-Python loop takes on each core in ``cores`` (this process moved there, then back),
    the fastest of ``SPEED_REPEATS`` tries (one interruption does not count, a slower machine slows
    every try), appended to ``into[core]``: the machine's own speed, timed between rounds while nothing else runs."""
    home = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        for core in cores:
            if core is not None and home is not None:
                os.sched_setaffinity(0, {core})
            best = float("inf")
            for _ in range(SPEED_REPEATS):
                t0, acc = time.perf_counter(), 0
                for i in range(SPEED_LOOP):
                    acc += i
                best = min(best, time.perf_counter() - t0)
            into.setdefault("any" if core is None else str(core), []).append(best * 1e3)
    finally:
        if home is not None:
            os.sched_setaffinity(0, home)


def speed_probe(cores: Sequence[int | None], into: dict[str, list[float]]) -> Callable[[], Awaitable[None]]:
    """What runs before every round: a moment for the last round's connections and servers to settle, then
    :func:`time_cpu_loop`."""

    async def probe() -> None:
        await asyncio.sleep(SETTLE_S)
        time_cpu_loop(cores, into)

    return probe
