"""What ``make bench`` concludes from its measurements: ratios to the forwarders, the floors, the table. Pure.

The bench (experiments/bench.py) measures four systems in front of one simulated upstream, in interleaved
rounds: two forwarders (experiments/forwarder.py), the gateway for a consumer without limits, and the gateway for
a consumer with limits (quota on a real Redis). The forwarders are the two yardsticks. :data:`FLOOR_BASE`, one
FastAPI route with one aiohttp session, is the thinnest forwarder most Python services would write and the one
the floors were set against: every verdict is against it. :data:`RAW_BASE`, a raw ASGI app with the same
session, is the platform's limit: the same ratios against it are reported beside the verdicts, with no floor.
This module turns the measurements into figures, checks them against :data:`FLOORS` and renders the report; it
never measures anything itself.

A floor verdict is only as good as the machine was quiet: :func:`machine_note` says when the load average at
the start of the run was high enough for the figures to be noise rather than the gateway.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLOOR_BASE = "forwarder_fastapi"  # the floors' yardstick: one FastAPI route, one aiohttp session
RAW_BASE = "forwarder"  # the platform's limit: a raw ASGI app, the same session; reported, no floor
FORWARDERS = (FLOOR_BASE, RAW_BASE)


@dataclass(frozen=True, slots=True)
class Floor:
    """One figure's limit. ``kind``: ``min`` (the figure must reach ``limit``) or ``max`` (must not exceed it).
    ``against``: what the figure is relative to, ``forwarder`` (computed against either forwarder) or
    ``upstream`` (the same figure whichever forwarder is the yardstick)."""

    name: str
    figure: str  # key in :func:`figures`
    kind: str
    limit: float
    unit: str  # "%" (a share, 0.85 = 85 %), "x" (a multiple) or "ms"
    against: str = "forwarder"


FLOORS: tuple[Floor, ...] = (
    Floor("RPS @32, without limits, share of the forwarder's", "rps_ratio", "min", 0.85, "%"),
    Floor("added p50 @1 over the forwarder's, without limits", "p50_over_forwarder_ms", "max", 0.15, "ms"),
    Floor("RPS @32, with limits (Redis), share of the forwarder's", "quota_rps_ratio", "min", 0.70, "%"),
    Floor("added p50 @1 over the forwarder's, with limits", "quota_p50_over_forwarder_ms", "max", 0.40, "ms"),
    Floor("streaming TTFT added p50 @1 (vs the upstream)", "ttft_added_p50_ms", "max", 0.80, "ms", "upstream"),
    Floor("p99 @1, without limits, multiple of the forwarder's", "p99_ratio", "max", 1.50, "x"),
)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation)."""
    s = sorted(values)
    if not s:
        raise ValueError("no samples")
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summarize_rounds(rounds: Sequence[Mapping[str, Sequence[float]]], base: str) -> dict[str, Any]:
    """Latency samples of interleaved rounds (each round: system name -> seconds) into milliseconds.

    Per system: p50 and p99 pooled over the rounds. Per system other than ``base``: ``added_p50_ms``, the median
    over the rounds of (its p50 - the base's p50) in the same round, so a slow spell that lands in one round moves
    one difference, not the figure; and ``added_p99_ms`` from the pooled p99s."""
    names = list(rounds[0])
    pooled = {n: [x for r in rounds for x in r[n]] for n in names}
    out: dict[str, Any] = {}
    for n in names:
        fig: dict[str, Any] = {"p50_ms": pct(pooled[n], 0.5) * 1e3, "p99_ms": pct(pooled[n], 0.99) * 1e3}
        if n != base:
            diffs = [(pct(r[n], 0.5) - pct(r[base], 0.5)) * 1e3 for r in rounds]
            fig["added_p50_ms"] = statistics.median(diffs)
            fig["rounds_added_p50_ms"] = diffs
            fig["added_p99_ms"] = fig["p99_ms"] - out[base]["p99_ms"]
        out[n] = fig
    return out


def over(rounds: Sequence[Mapping[str, Sequence[float]]], system: str, base: str) -> float:
    """Median over the rounds of (``system``'s p50 - ``base``'s p50), in ms."""
    return statistics.median((pct(r[system], 0.5) - pct(r[base], 0.5)) * 1e3 for r in rounds)


def round_order(names: Sequence[str], i: int) -> list[str]:
    """The order the systems run in round ``i``: as given in even rounds, reversed in odd ones, so over an even
    number of rounds a machine that drifts (a neighbour's load coming or going) weighs on every system alike
    instead of always on the last."""
    return list(names) if i % 2 == 0 else list(reversed(names))


def rps_ratio(rounds: Sequence[Mapping[str, float]], system: str, base: str) -> float:
    """Median over the throughput rounds of ``system``'s RPS / ``base``'s RPS in the same round."""
    return statistics.median(r[system] / r[base] for r in rounds)


def against_forwarders(
    rounds: Sequence[Mapping[str, Any]], measure: Callable[[Sequence[Mapping[str, Any]], str, str], float]
) -> dict[str, dict[str, float]]:
    """``measure(rounds, system, base)`` (:func:`rps_ratio` or :func:`over`) of every measured system but the
    upstream against each forwarder: ``{forwarder: {system: figure}}``."""
    names = [n for n in rounds[0] if n != "direct"]
    return {b: {n: measure(rounds, n, b) for n in names if n != b} for b in FORWARDERS if b in rounds[0]}


def figures(result: Mapping[str, Any], base: str = FLOOR_BASE) -> dict[str, float]:
    """The figures the floors are about, against forwarder ``base``, from a bench result (``runs/bench.json``'s
    shape: ``throughput.ratios`` and ``latency.over_p50_ms`` keyed by forwarder, see :func:`against_forwarders`)."""
    lat, ttft = result["latency"], result["ttft"]
    rps, over_p50 = result["throughput"]["ratios"][base], lat["over_p50_ms"][base]
    return {
        "rps_ratio": rps["gateway"],
        "quota_rps_ratio": rps["gateway_quota"],
        "p50_over_forwarder_ms": over_p50["gateway"],
        "quota_p50_over_forwarder_ms": over_p50["gateway_quota"],
        "ttft_added_p50_ms": ttft["gateway"]["added_p50_ms"],
        "p99_ratio": lat["gateway"]["p99_ms"] / lat[base]["p99_ms"],
    }


def verdicts(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each floor with the run's value against :data:`FLOOR_BASE` and whether it was met, and the same figure
    against :data:`RAW_BASE` (``raw_value``, no verdict)."""
    figs, raw_figs = figures(result, FLOOR_BASE), figures(result, RAW_BASE)
    out = []
    for f in FLOORS:
        v = figs[f.figure]
        ok = v >= f.limit if f.kind == "min" else v <= f.limit
        out.append(
            {
                "floor": f.name,
                "figure": f.figure,
                "against": FLOOR_BASE if f.against == "forwarder" else "direct",
                "value": v,
                "limit": f.limit,
                "kind": f.kind,
                "met": ok,
                "raw_value": raw_figs[f.figure],
            }
        )
    return out


def machine(cpuinfo: str | None = None, loadavg: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """The machine's description: cores, CPU model, Python, load average (1, 5, 15 min)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    load = loadavg if loadavg is not None else os.getloadavg()
    return {
        "cores": os.cpu_count() or 1,
        "cpu_model": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in load],
    }


BUSY_LOAD_PER_CORE = 0.25


def machine_note(m: Mapping[str, Any]) -> str | None:
    """A warning when the 1-minute load average before the run says other work shared the cores."""
    load1, cores = m["load_avg"][0], m["cores"]
    if load1 > BUSY_LOAD_PER_CORE * cores:
        return (
            f"the machine was busy (load average {load1:.2f} on {cores} cores before the run): "
            "the figures measure the machine as much as the gateway; the floors hold for an idle machine"
        )
    return None


STEADY_SPREAD = 1.25
SPEED_REPEATS = 3  # tries per timing, the fastest kept (experiments/benchspeed.py)


def speed_note(loop_ms: Mapping[str, Sequence[float]]) -> str | None:
    """A warning when a fixed CPU loop, timed on each core before every round, took much longer at one time than
    at another on the same core: the machine's speed moved during the run (a neighbour on a shared host), which
    the load average inside the machine does not show. Cores are compared only with themselves: two cores that
    differ steadily are not a change over time."""
    spreads = [(max(ms) / min(ms), core, min(ms), max(ms)) for core, ms in loop_ms.items() if len(ms) > 1]
    if not spreads:
        return None
    spread, core, lo, hi = max(spreads)
    if spread > STEADY_SPREAD:
        where = "" if core == "any" else f" on core {core}"
        return (
            f"the machine's speed moved during the run (a fixed CPU loop{where} took {lo:.1f} to {hi:.1f} ms, "
            f"{spread:.2f}x apart): the figures measure the machine as much as the gateway; "
            "the floors hold for a steady machine"
        )
    return None


def speed_line(loop_ms: Mapping[str, Sequence[float]]) -> str | None:
    """The loop's timings per core, for the machine line of the report."""
    cores = [(c, ms) for c, ms in loop_ms.items() if ms]
    if not cores:
        return None
    each = ", ".join(f"{'' if c == 'any' else f'core {c} '}{min(ms):.1f} to {max(ms):.1f} ms" for c, ms in cores)
    times = len(cores[0][1])
    return f"(a fixed CPU loop timed {times} times during the run, the fastest of {SPEED_REPEATS} tries each: {each})"


def _fmt(unit: str, v: float) -> str:
    if unit == "%":
        return f"{v * 100:.1f} %"
    if unit == "x":
        return f"{v:.2f}x"
    return f"{v:+.3f} ms"


COLUMNS = (
    ("upstream", "direct"),
    ("raw ASGI fwd", RAW_BASE),
    ("FastAPI fwd", FLOOR_BASE),
    ("gateway", "gateway"),
    ("gateway+quota", "gateway_quota"),
)


def _systems(result: Mapping[str, Any]) -> list[str]:
    """Absolute figures per system, one column each."""
    tp, lat, ttft = result["throughput"], result["latency"], result["ttft"]
    keys = [k for _, k in COLUMNS]
    lines = [f"{'figure':30}" + "".join(f"{c:>15}" for c, _ in COLUMNS), "-" * (30 + 15 * len(COLUMNS))]

    def row(label: str, cells: Sequence[str]) -> None:
        lines.append(f"{label:30}" + "".join(f"{c:>15}" for c in cells))

    row("RPS @32 conns", [f"{tp[k]['rps']:.0f}" if k in tp else "" for k in keys])
    row("CPU per request @32 (us)", [f"{tp[k]['cpu_us']:.0f}" if k in tp and "cpu_us" in tp[k] else "" for k in keys])
    row("latency p50 @1 (ms)", [f"{lat[k]['p50_ms']:.3f}" if k in lat else "" for k in keys])
    row("latency p99 @1 (ms)", [f"{lat[k]['p99_ms']:.3f}" if k in lat else "" for k in keys])
    row(
        "added p50 @1 vs upstream (ms)",
        [f"{lat[k]['added_p50_ms']:+.3f}" if k in lat and k != "direct" else "" for k in keys],
    )
    row("stream TTFT p50 @1 (ms)", [f"{ttft[k]['p50_ms']:.3f}" if k in ttft else "" for k in keys])
    row("stream TTFT p99 @1 (ms)", [f"{ttft[k]['p99_ms']:.3f}" if k in ttft else "" for k in keys])
    return lines


def _floors(result: Mapping[str, Any]) -> list[str]:
    """Each floor: its limit, the gateway's figure against the FastAPI forwarder with the verdict, and the same
    figure against the raw ASGI forwarder (no verdict)."""
    lines = [
        "floors: verdicts against the FastAPI + aiohttp forwarder (the yardstick the floors were set on);",
        "beside them, the same figures against the raw ASGI forwarder (the platform's limit, no floor)",
        f"{'floor':55} {'limit':>12} {'vs FastAPI fwd':>15}  {'verdict':8} {'vs raw ASGI fwd':>15}",
    ]
    for v, f in zip(verdicts(result), FLOORS, strict=True):
        limit = (">= " if f.kind == "min" else "<= ") + _fmt(f.unit, f.limit).lstrip("+")
        raw = _fmt(f.unit, v["raw_value"]) if f.against == "forwarder" else "(vs upstream)"
        verdict = "met" if v["met"] else "NOT MET"
        lines.append(f"{f.name:55} {limit:>12} {_fmt(f.unit, v['value']):>15}  {verdict:8} {raw:>15}")
    return lines


def table(result: Mapping[str, Any]) -> str:
    """The printed report: absolute figures per system, then each floor with its verdict, then the machine."""
    tp, m = result["throughput"], result["machine"]
    errs = sum(tp[k]["errors"] for _, k in COLUMNS if k in tp)
    lines = [*_systems(result), "", *_floors(result), ""]
    lines.append(
        f"({m['cores']} cores, {m['cpu_model']}, {m['python']}; load average {m['load_avg'][0]:.2f} before the run; "
        f"quota on {result['quota_store']}; errors during the throughput runs: {errs})"
    )
    loop_ms = result.get("speed_loop_ms", {})
    if line := speed_line(loop_ms):
        lines.append(line)
    lines.extend(f"NOTE: {note}" for note in (machine_note(m), speed_note(loop_ms)) if note)
    return "\n".join(lines)
