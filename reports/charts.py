"""PNG charts (matplotlib's Agg canvas, no pyplot state). Same input -> same bytes: fixed rc parameters, fixed
size and dpi, and no ``Software`` metadata in the PNG (matplotlib writes no timestamp into PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reports.summary import Computed

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": False,
}
STATE_COLOURS = {"closed": "#4caf50", "half_open": "#ffb300", "open": "#e53935"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _arr(df: pl.DataFrame, col: str) -> np.ndarray:
    return df[col].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _shade(ax: Axes, faults: list[dict[str, Any]], end_s: float) -> None:
    for f in faults:
        ax.axvspan(f["start_s"], f["end_s"] if f["end_s"] is not None else end_s, color="#e53935", alpha=0.12, lw=0)


def _finish(fig: Figure, ax: Axes, path: Path) -> None:
    ax.set_xlabel("run time (s)")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", metadata={"Software": None})


def _step(ax: Axes, x: np.ndarray, y: np.ndarray, **kw: Any) -> None:
    ax.step(x, y, where="post", **kw)


def traffic(c: Computed, path: Path) -> None:
    b, faults, end = c.buckets, c.summary["scenario"]["faults"], c.summary["run"]["end_s"]
    fig = Figure(figsize=(9, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = _arr(b, "t_start")
    _step(ax1, x, _arr(b, "rps"), label="requests/s", color=PALETTE[0])
    bucket_s = c.summary["run"]["bucket_s"]
    _step(ax1, x, (b["bad"] / bucket_s).to_numpy(), label="failed/s (client)", color=PALETTE[3])
    if "upstream_failed" in b.columns:
        _step(ax1, x, (b["upstream_failed"] / bucket_s).to_numpy(), label="failed upstream calls/s", color=PALETTE[1])
    ax1.set_ylabel("rate (1/s)")
    ax1.legend(loc="upper right")
    ax1.set_title(f"{c.summary['scenario']['name']}: traffic and errors (fault windows shaded)")
    _step(ax2, x, 100 * _arr(b, "error_ratio"), color=PALETTE[3], label="error ratio (gaps = no traffic)")
    ax2.axhline(100 * (1 - c.spec.availability), color="k", ls="--", lw=0.8, label="error budget rate")
    ax2.set_ylabel("failed / valid (%)")
    ax2.legend(loc="upper right")
    for ax in (ax1, ax2):
        _shade(ax, faults, end)
    _finish(fig, ax2, path)


def latency(c: Computed, path: Path) -> None:
    b, faults, end = c.buckets, c.summary["scenario"]["faults"], c.summary["run"]["end_s"]
    fig = Figure(figsize=(9, 5))
    axes = fig.subplots(2, 1, sharex=True)
    x = _arr(b, "t_start")
    for ax, metric, slo in ((axes[0], "ttft", c.spec.ttft_p95_s), (axes[1], "e2e", c.spec.e2e_p99_s)):
        for i, q in enumerate((50, 95, 99)):
            _step(ax, x, _arr(b, f"{metric}_p{q}"), label=f"p{q}", color=PALETTE[i])
        if slo is not None:
            ax.axhline(slo, color="k", ls="--", lw=0.8, label="SLO threshold")
        ax.set_ylabel(f"{'TTFT' if metric == 'ttft' else 'end-to-end'} (s)")
        ax.legend(loc="upper right")
        _shade(ax, faults, end)
    axes[0].set_title("latency percentiles per bucket (good requests)")
    _finish(fig, axes[1], path)


def providers(c: Computed, path: Path) -> None:
    s, faults, end = c.shares, c.summary["scenario"]["faults"], c.summary["run"]["end_s"]
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    names = sorted(set(s["provider"].to_list())) if s.height else []
    if names:
        x = _arr(s.filter(pl.col("provider") == names[0]), "t_start")
        ys = [np.nan_to_num(_arr(s.filter(pl.col("provider") == n), "share")) for n in names]
        ax.stackplot(x, *ys, labels=names, colors=PALETTE[: len(names)], step="post")
        ax.legend(loc="upper right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of good requests")
    ax.set_title("serving provider share per bucket")
    _shade(ax, faults, end)
    _finish(fig, ax, path)


def breakers(c: Computed, path: Path) -> None:
    iv, faults, end = c.intervals, c.summary["scenario"]["faults"], c.summary["run"]["end_s"]
    names = sorted(set(iv["provider"].to_list())) if iv.height else []
    fig = Figure(figsize=(9, 1.2 + 0.5 * max(1, len(names))))
    ax = fig.subplots()
    for i, name in enumerate(names):
        rows = iv.filter(pl.col("provider") == name)
        for state, colour in STATE_COLOURS.items():
            spans = [
                (r["start"], r["end"] - r["start"]) for r in rows.filter(pl.col("state") == state).iter_rows(named=True)
            ]
            if spans:
                ax.broken_barh(spans, (i - 0.35, 0.7), facecolors=colour, label=state if i == 0 else None)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, end)
    if not names:
        ax.text(0.5, 0.5, "no breaker transitions", ha="center", va="center", transform=ax.transAxes)
    else:
        handles = [Patch(color=col, label=st) for st, col in STATE_COLOURS.items()]
        ax.legend(handles=handles, loc="upper right", ncols=3)
    ax.set_title("circuit breaker state")
    _shade(ax, faults, end)
    _finish(fig, ax, path)


def budget(c: Computed, path: Path) -> None:
    b, faults, end = c.buckets, c.summary["scenario"]["faults"], c.summary["run"]["end_s"]
    fig = Figure(figsize=(9, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = _arr(b, "t_start")
    _step(ax1, x, _arr(b, "burn_availability"), color=PALETTE[3], label="burn rate per bucket")
    for thr, ls in ((14.4, "--"), (6.0, ":")):
        ax1.axhline(thr, color="k", ls=ls, lw=0.8, label=f"{thr:g}x")
    ax1.set_ylabel("burn rate (availability)")
    ax1.set_title("error budget burn (vertical lines: page alerts firing)")
    _step(ax2, x, 100 * _arr(b, "budget_consumed_cum"), color=PALETTE[0], label="budget consumed")
    ax2.axhline(100, color="k", ls="--", lw=0.8, label="whole budget")
    ax2.set_ylabel("budget consumed (%)")
    for i, rule in enumerate(c.summary["alerts"]["availability"]["rules"]):
        for j, (start, _stop) in enumerate(rule["firing"]):
            for ax in (ax1, ax2):
                label = rule["rule"] if (ax is ax1 and j == 0) else None
                ax.axvline(start, color=PALETTE[4 + i], lw=1.2, label=label)
    for ax in (ax1, ax2):
        ax.legend(loc="upper left")
        _shade(ax, faults, end)
    _finish(fig, ax2, path)


CHARTS = {
    "traffic.png": traffic,
    "latency.png": latency,
    "providers.png": providers,
    "breakers.png": breakers,
    "budget.png": budget,
}


def render_all(c: Computed, out_dir: Path) -> list[str]:
    """Write every chart into ``out_dir``; return the file names."""
    with mpl.rc_context(RC):
        for name, draw in CHARTS.items():
            draw(c, out_dir / name)
    return list(CHARTS)
