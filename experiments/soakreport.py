"""What ``make soak`` concludes from its samples: growth after warm-up, drift, the verdicts, the report. Pure.

A sample is taken every interval of the soak (experiments/soak.py): the gateway's resident memory and open file
descriptors, the simulator's resident memory, the state store's memory, and the requests finished in that
interval (count, errors, latency p50, p99 and the slowest). The checks compare the run after its warm-up with
itself:

* memory: the largest RSS after warm-up is at most :data:`RSS_GROWTH` above the RSS at the end of warm-up, for
  the gateway and for the simulator (a stall upstream is in every gateway latency);
* file descriptors: those that are not sockets (files, pipes) never grow: the largest count in the last third is
  no higher than the largest in the first; sockets are pooled connections whose number follows the concurrency
  (a stall raises the pool's high-water mark, which then stays), so a leaked socket is judged by its state
  instead: one the peer closed and the gateway never did stays in CLOSE_WAIT, and the last third must hold no
  more of those than the first (transient ones close within milliseconds);
* latency: the median of the interval p50s in the last third is at most :data:`LATENCY_DRIFT` times the median of
  those in the first third, and likewise for p99;
* errors: none.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

RSS_GROWTH = 0.10
LATENCY_DRIFT = 1.25


def after_warmup(samples: Sequence[Mapping[str, Any]], warmup_s: float) -> list[Mapping[str, Any]]:
    return [s for s in samples if s["t"] >= warmup_s]


def thirds(samples: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    n = max(1, len(samples) // 3)
    return list(samples[:n]), list(samples[-n:])


def _growth(steady: Sequence[Mapping[str, Any]], key: str, check: str) -> dict[str, Any]:
    base, peak = steady[0][key], max(s[key] for s in steady)
    growth = peak / base - 1
    return {
        "check": check,
        "value": f"{base:.1f} -> peak {peak:.1f} MiB ({growth * 100:+.1f} %)",
        "limit": f"<= +{RSS_GROWTH * 100:.0f} %",
        "passed": growth <= RSS_GROWTH,
    }


def slowest(samples: Sequence[Mapping[str, Any]]) -> str:
    """The slowest request of the run and when (a stall of everything in flight hides in an interval's p99)."""
    worst = max(samples, key=lambda s: s["max_ms"])
    return f"slowest request {worst['max_ms']:.1f} ms (in the interval ending at {worst['t']:.0f} s)"


def verdicts(samples: Sequence[Mapping[str, Any]], warmup_s: float) -> list[dict[str, Any]]:
    """Each check with the figures it compared and whether it passed."""
    steady = after_warmup(samples, warmup_s)
    if len(steady) < 3:
        raise ValueError(f"{len(steady)} samples after a warm-up of {warmup_s:g} s: too few to judge")
    first, last = thirds(steady)
    fd_first, fd_last = max(s["other_fds"] for s in first), max(s["other_fds"] for s in last)
    cw_first, cw_last = max(s["close_wait"] for s in first), max(s["close_wait"] for s in last)
    sockets = (max(s["fds"] - s["other_fds"] for s in first), max(s["fds"] - s["other_fds"] for s in last))
    p50_first, p50_last = (statistics.median(s["p50_ms"] for s in part) for part in (first, last))
    p99_first, p99_last = (statistics.median(s["p99_ms"] for s in part) for part in (first, last))
    errors = sum(s["errors"] for s in samples)
    return [
        _growth(steady, "rss_mb", "RSS growth after warm-up"),
        _growth(steady, "sim_rss_mb", "simulator RSS growth after warm-up"),
        {
            "check": "open files and pipes",
            "value": f"first third max {fd_first}, last third max {fd_last}",
            "limit": "no growth",
            "passed": fd_last <= fd_first,
        },
        {
            "check": "sockets left half-closed (CLOSE_WAIT)",
            "value": f"first third max {cw_first}, last third max {cw_last} (sockets open: max {sockets[0]}, then "
            f"{sockets[1]})",
            "limit": "no growth",
            "passed": cw_last <= cw_first,
        },
        {
            "check": "latency p50 drift",
            "value": f"{p50_first:.2f} -> {p50_last:.2f} ms ({p50_last / p50_first:.2f}x)",
            "limit": f"<= {LATENCY_DRIFT:.2f}x",
            "passed": p50_last <= LATENCY_DRIFT * p50_first,
        },
        {
            "check": "latency p99 drift",
            "value": f"{p99_first:.2f} -> {p99_last:.2f} ms ({p99_last / p99_first:.2f}x)",
            "limit": f"<= {LATENCY_DRIFT:.2f}x",
            "passed": p99_last <= LATENCY_DRIFT * p99_first,
        },
        {"check": "errors", "value": str(errors), "limit": "0", "passed": errors == 0},
    ]


def markdown(run: Mapping[str, Any], samples: Sequence[Mapping[str, Any]], chart: str | None) -> str:
    """The report: what ran, each check, the samples."""
    v = verdicts(samples, run["warmup_s"])
    total = sum(s["requests"] for s in samples)
    streams = sum(s["streams"] for s in samples)
    steady = after_warmup(samples, run["warmup_s"])
    redis = (steady[0]["redis_mb"], steady[-1]["redis_mb"])
    lines = [
        "# Soak",
        "",
        f"{run['seconds']:g} s of traffic at {run['rate']:g} requests/s ({run['stream_share'] * 100:.0f} % streaming) "
        f"through one gateway worker, every request of a consumer with limits on {run['store']}; a sample every "
        f"{run['interval_s']:g} s, the first {run['warmup_s']:g} s a warm-up. Machine: {run['machine']}.",
        "",
        f"{total} requests ({streams} streams); {slowest(samples)}; state store memory {redis[0]:.2f} -> "
        f"{redis[1]:.2f} MiB after warm-up.",
        "",
        "| check | measured | limit | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {x['check']} | {x['value']} | {x['limit']} | {'pass' if x['passed'] else 'FAIL'} |" for x in v]
    lines.append("")
    lines.append(f"Overall: {'every check passed' if all(x['passed'] for x in v) else 'FAILED'}.")
    if chart:
        lines += ["", f"![soak]({chart})"]
    lines += [
        "",
        "| t (s) | requests | errors | p50 ms | p99 ms | max ms | RSS MiB | simulator RSS MiB | fds (not sockets) "
        "| CLOSE_WAIT | store MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['t']:.0f} | {s['requests']} | {s['errors']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
        f"{s['max_ms']:.2f} | {s['rss_mb']:.1f} | {s['sim_rss_mb']:.1f} | {s['fds']} ({s['other_fds']}) | "
        f"{s['close_wait']} | {s['redis_mb']:.2f} |"
        for s in samples
    ]
    return "\n".join(lines) + "\n"
