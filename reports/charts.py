"""PNG charts (matplotlib's Agg canvas, no pyplot state). Same input -> same bytes: fixed rc parameters, fixed
size and dpi, and no ``Software`` metadata in the PNG (matplotlib writes no timestamp into PNGs).

Every chart: the scenario and run id in its title; legends outside the plotting area, to the right; fault
windows shaded behind the data in ``FAULT_COLOUR``, which each legend names ("fault window", and the darker
shade where windows overlap); load phases as a strip of alternating greys along the top edge, each named
above it; one colour per provider, the same in every chart (:func:`provider_colours`). Each ``draw_*``
function returns the figure, so tests can read its structure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports.summary import Computed

RC: Any = {  # matplotlib types rc keys as a Literal of every key; these are checked by matplotlib at run time
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
PROVIDER_PALETTE = ("#1f77b4", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#2ca02c")
QUANTILE_COLOURS = {50: "#2ca02c", 95: "#ff7f0e", 99: "#d62728"}
FAULT_COLOUR = "#9467bd"
FIRE_COLOURS = ("#8c564b", "#e377c2")
FAULT_ALPHA = 0.18
FAULT_LABEL = "fault window"
OVERLAP_LABEL = "fault windows overlapping"
PHASE_COLOURS = ("#bdbdbd", "#e0e0e0")  # alternating, in a strip along the top of each plot
PHASE_STRIP = 0.035
FAULT_STRIP = 0.05
LEGEND: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": 8}


def provider_colours(c: Computed) -> dict[str, str]:
    """One colour per provider, from every provider the run mentions (sorted), so each chart agrees."""
    s = c.summary
    names = {str(p["provider"]) for p in s["by_provider"] if p["provider"] not in (None, "(none)")}
    names |= set(s["resilience"]["breakers"])
    names |= {str(f["upstream"]) for f in s["scenario"]["faults"] if f.get("upstream") != "state_store"}
    return {n: PROVIDER_PALETTE[i % len(PROVIDER_PALETTE)] for i, n in enumerate(sorted(names))}


def title(c: Computed, what: str) -> str:
    s = c.summary
    return f"{s['scenario']['name']} (run {s['run']['run_id'] or '-'}): {what}"


def _arr(df: pl.DataFrame, col: str) -> np.ndarray:
    return df[col].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _overlapping(faults: list[dict[str, Any]], end: float) -> bool:
    reach = float("-inf")
    for start, stop in sorted((f["start_s"], f["end_s"] if f["end_s"] is not None else end) for f in faults):
        if start < reach:
            return True
        reach = max(reach, stop)
    return False


def _backdrop(ax: Axes, c: Computed, *, names: bool, fault_strip: bool = False) -> None:
    """Load phases as a strip of alternating greys along the top edge (named above it when ``names``), so they
    never tint the data; fault windows shaded behind the data, or (``fault_strip``, for a chart whose data fill
    the plot) in a band of their own under the phase strip."""
    s = c.summary
    end = s["run"]["end_s"]
    for i, ph in enumerate(s["scenario"].get("phases") or []):
        colour = PHASE_COLOURS[i % 2]
        ax.axvspan(ph["start_s"], ph["end_s"], ymin=1 - PHASE_STRIP, ymax=1, color=colour, lw=0, gid="phase-band")
        if names:
            ax.text(
                (ph["start_s"] + ph["end_s"]) / 2,
                1.01,
                ph["name"],
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                color="#555555",
                gid="phase-label",
            )
    for f in s["scenario"]["faults"]:
        stop = f["end_s"] if f["end_s"] is not None else end
        band = {"ymin": 1 - PHASE_STRIP - FAULT_STRIP, "ymax": 1 - PHASE_STRIP} if fault_strip else {}
        ax.axvspan(
            f["start_s"], stop, color=FAULT_COLOUR, alpha=FAULT_ALPHA, lw=0, zorder=0, gid="fault-window", **band
        )


def _legend(ax: Axes, c: Computed, extra: list[Any] | None = None) -> None:
    """The axes' labelled artists plus a "fault window" entry when the run has faults; outside, to the right."""
    handles, labels = ax.get_legend_handles_labels()
    handles += extra or []
    labels += [h.get_label() for h in extra or []]
    faults = c.summary["scenario"]["faults"]
    if faults:
        handles.append(Patch(color=FAULT_COLOUR, alpha=FAULT_ALPHA, label=FAULT_LABEL))
        labels.append(FAULT_LABEL)
        if _overlapping(faults, c.summary["run"]["end_s"]):  # two translucent layers: the darker shade
            handles.append(Patch(color=FAULT_COLOUR, alpha=1 - (1 - FAULT_ALPHA) ** 2, label=OVERLAP_LABEL))
            labels.append(OVERLAP_LABEL)
    if handles:
        ax.legend(handles, labels, **LEGEND)


def _step(ax: Axes, x: np.ndarray, y: np.ndarray, **kw: Any) -> None:
    ax.step(x, y, where="post", **kw)


def _figure(height: float, rows: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(10, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def draw_traffic(c: Computed) -> Figure:
    b = c.buckets
    fig, (ax1, ax2) = _figure(5.2, 2)
    x = _arr(b, "t_start")
    bucket_s = c.summary["run"]["bucket_s"]
    _step(ax1, x, _arr(b, "rps"), label="requests/s", color=PALETTE[0])
    _step(ax1, x, (b["bad"] / bucket_s).to_numpy(), label="failed/s (client)", color=PALETTE[3])
    if "upstream_failed" in b.columns:
        _step(ax1, x, (b["upstream_failed"] / bucket_s).to_numpy(), label="failed upstream calls/s", color=PALETTE[1])
    ax1.set_ylabel("rate (1/s)")
    ax1.set_title(title(c, "traffic and errors"), pad=14)
    _step(ax2, x, 100 * _arr(b, "error_ratio"), color=PALETTE[3], label="error ratio (gaps = no traffic)")
    ax2.axhline(100 * (1 - c.spec.availability), color="k", ls="--", lw=0.8, label="error budget rate (SLO)")
    ax2.set_ylabel("failed / valid (%)")
    ax2.set_xlabel("run time (s)")
    for i, ax in enumerate((ax1, ax2)):
        _backdrop(ax, c, names=i == 0)
        _legend(ax, c)
    return fig


def draw_latency(c: Computed) -> Figure:
    b = c.buckets
    fig, axes = _figure(5.2, 2)
    x = _arr(b, "t_start")
    slos = (("ttft", c.spec.ttft_p95_s, 95, "TTFT"), ("e2e", c.spec.e2e_p99_s, 99, "end-to-end"))
    for i, (ax, (metric, slo, q_slo, name)) in enumerate(zip(axes, slos, strict=True)):
        for q, colour in QUANTILE_COLOURS.items():
            _step(ax, x, _arr(b, f"{metric}_p{q}"), label=f"{name} p{q}", color=colour)
        if slo is not None:
            ax.axhline(slo, color=QUANTILE_COLOURS[q_slo], ls="--", lw=1.0, label=f"SLO: {name} p{q_slo} <= {slo:g} s")
        ax.set_ylabel(f"{name} (s)")
        _backdrop(ax, c, names=i == 0)
        _legend(ax, c)
    axes[0].set_title(title(c, "latency percentiles per bucket (good requests)"), pad=14)
    axes[1].set_xlabel("run time (s)")
    return fig


def draw_providers(c: Computed) -> Figure:
    s = c.shares
    fig, (ax,) = _figure(3.4)
    colours = provider_colours(c)
    names = sorted(set(s["provider"].to_list())) if s.height else []
    if names:
        x = _arr(s.filter(pl.col("provider") == names[0]), "t_start")
        ys = [np.nan_to_num(_arr(s.filter(pl.col("provider") == n), "share")) for n in names]
        ax.stackplot(x, *ys, labels=names, colors=[colours[n] for n in names], step="post", zorder=2)
    ax.set_ylim(0, 1 / (1 - PHASE_STRIP - FAULT_STRIP))  # the shares fill [0, 1]; the strips sit above them
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("share of good requests")
    ax.set_xlabel("run time (s)")
    ax.set_title(title(c, "provider share (top strip: faults)"), pad=14)
    _backdrop(ax, c, names=True, fault_strip=True)
    _legend(ax, c)
    return fig


def draw_breakers(c: Computed) -> Figure:
    iv, end = c.intervals, c.summary["run"]["end_s"]
    names = sorted(set(iv["provider"].to_list())) if iv.height else []
    faults = c.summary["scenario"]["faults"]
    fig, (ax,) = _figure(1.6 + 0.5 * (max(1, len(names)) + bool(faults)))
    if faults:  # a row of its own, so the breaker bars keep their state colours
        spans = [(f["start_s"], (f["end_s"] if f["end_s"] is not None else end) - f["start_s"]) for f in faults]
        ax.broken_barh(spans, (len(names) - 0.3, 0.6), facecolors=FAULT_COLOUR, alpha=FAULT_ALPHA, zorder=2)
    for i, name in enumerate(names):
        rows = iv.filter(pl.col("provider") == name)
        for state, colour in STATE_COLOURS.items():
            spans = [
                (r["start"], r["end"] - r["start"]) for r in rows.filter(pl.col("state") == state).iter_rows(named=True)
            ]
            if spans:
                ax.broken_barh(spans, (i - 0.3, 0.6), facecolors=colour, zorder=2)
    ax.set_yticks(range(len(names) + bool(faults)), [*names, *(["faults"] if faults else [])])
    colours = provider_colours(c)
    for label in ax.get_yticklabels():
        label.set_color(colours.get(label.get_text(), "k"))
    ax.set_xlim(0, end)
    ax.set_xlabel("run time (s)")
    ax.set_title(title(c, "circuit breaker state"), pad=14)
    _backdrop(ax, c, names=True)
    if not names:
        ax.text(0.5, 0.5, "no breaker transitions", ha="center", va="center", transform=ax.transAxes)
    states = [Patch(color=col, label=f"breaker {st}") for st, col in STATE_COLOURS.items()] if names else []
    _legend(ax, c, states)
    return fig


def draw_budget(c: Computed) -> Figure:
    b = c.buckets
    fig, (ax1, ax2) = _figure(5.2, 2)
    x = _arr(b, "t_start")
    _step(ax1, x, _arr(b, "burn_availability"), color=PALETTE[3], label="burn rate per bucket")
    for thr, ls in ((14.4, "--"), (6.0, ":")):
        ax1.axhline(thr, color="k", ls=ls, lw=0.8, label=f"page threshold {thr:g}x")
    ax1.set_ylabel("burn rate (availability)")
    ax1.set_title(title(c, "availability error budget burn (vertical lines: page alerts firing)"), pad=14)
    _step(ax2, x, 100 * _arr(b, "budget_consumed_cum"), color=PALETTE[0], label="budget used so far")
    ax2.axhline(100, color="k", ls="--", lw=0.8, label="whole budget")
    ax2.set_ylabel("budget used (%)")
    ax2.set_xlabel("run time (s)")
    fire_handles = []
    for i, rule in enumerate(c.summary["alerts"]["availability"]["rules"]):
        colour = FIRE_COLOURS[i % len(FIRE_COLOURS)]
        for start, _stop in rule["firing"]:
            for ax in (ax1, ax2):
                ax.axvline(start, color=colour, lw=1.2)
        if rule["firing"]:
            fire_handles.append(Line2D([], [], color=colour, lw=1.2, label=f"page {rule['rule']} fires"))
    for i, ax in enumerate((ax1, ax2)):
        _backdrop(ax, c, names=i == 0)
        _legend(ax, c, fire_handles if i == 0 else None)
    return fig


CHARTS: dict[str, Callable[[Computed], Figure]] = {
    "traffic.png": draw_traffic,
    "latency.png": draw_latency,
    "providers.png": draw_providers,
    "breakers.png": draw_breakers,
    "budget.png": draw_budget,
}


def figures(c: Computed) -> dict[str, Figure]:
    """Every chart as a matplotlib figure, drawn under the fixed rc parameters."""
    with mpl.rc_context(RC):
        return {name: draw(c) for name, draw in CHARTS.items()}


def render_all(c: Computed, out_dir: Path) -> list[str]:
    """Write every chart into ``out_dir``; return the file names."""
    with mpl.rc_context(RC):
        for name, draw in CHARTS.items():
            fig = draw(c)
            FigureCanvasAgg(fig)
            fig.savefig(out_dir / name, format="png", metadata={"Software": None})
    return list(CHARTS)
