"""The charts' structure, read from the matplotlib figures: titles, legends, fault windows, SLO lines, phases and
provider colours (a structural test instead of a golden image, so fonts and versions do not matter)."""

from __future__ import annotations

from typing import Any

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.patches import Rectangle

from reports.charts import FAULT_COLOUR, FAULT_LABEL, OVERLAP_LABEL, figures, provider_colours
from reports.load import from_lines
from reports.summary import Computed, compute
from tests.reports.factory import T0, lines, outage_events, outage_run, outage_scenario

PHASES = [
    {"name": "steady", "start_s": 0, "end_s": 60, "rps": 10},
    {"name": "outage", "start_s": 60, "end_s": 120, "rps": 10},
    {"name": "recovery", "start_s": 120, "end_s": 180, "rps": 10},
]


@pytest.fixture(scope="module")
def computed() -> Computed:
    scenario = outage_scenario() | {"load": {"phases": PHASES}}
    run = from_lines(
        lines(outage_run(rate=10, seed=5)), lines(outage_events()), scenario, {"started_at": T0, "run_id": "r-42"}
    )
    return compute(run)


@pytest.fixture(scope="module")
def charts(computed: Computed) -> dict[str, Figure]:
    figs = figures(computed)
    for fig in figs.values():
        FigureCanvasAgg(fig).draw()  # type: ignore[no-untyped-call]  # matplotlib leaves Agg's draw() unannotated
    return figs


def _legends(fig: Figure) -> list[Legend]:
    return [legend for ax in fig.axes if (legend := ax.get_legend()) is not None]


def _entries(legend: Legend) -> dict[str, Any]:
    return dict(zip((t.get_text() for t in legend.get_texts()), legend.legend_handles, strict=True))


def test_every_title_names_the_scenario_and_the_run(charts: dict[str, Figure]) -> None:
    for name, fig in charts.items():
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles, name
        assert all("openai-outage" in t and "r-42" in t for t in titles), (name, titles)


def test_every_legend_sits_outside_the_data(charts: dict[str, Figure]) -> None:
    for name, fig in charts.items():
        # Ignored on the next line: the Agg canvas has one; the base class does not
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        legends = _legends(fig)
        assert legends, name
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            assert box.x0 >= area.x1, f"{name}: the legend overlaps the plotting area"


def test_fault_windows_are_named_in_the_legend_in_their_own_colour(charts: dict[str, Figure]) -> None:
    for name, fig in charts.items():
        entries = {k: v for lg in _legends(fig) for k, v in _entries(lg).items()}
        assert FAULT_LABEL in entries, name
        assert to_hex(entries[FAULT_LABEL].get_facecolor()) == FAULT_COLOUR
        spans = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "fault-window"]
        assert spans and all(to_hex(p.get_facecolor()) == FAULT_COLOUR for p in spans), name
        assert all(p.get_zorder() < 1 for p in spans), f"{name}: fault shading must stay behind the data"


def test_fault_windows_stay_visible_where_the_data_fill_the_plot(charts: dict[str, Figure]) -> None:
    (ax,) = charts["providers.png"].axes
    spans = [p for p in ax.patches if p.get_gid() == "fault-window"]
    assert spans and all(
        isinstance(p, Rectangle) and p.get_y() >= 0.9 for p in spans
    )  # a strip above the stacked shares, not behind them
    assert ax.get_ylim()[1] > 1.0


def test_each_slo_line_says_which_percentile_it_bounds(charts: dict[str, Figure]) -> None:
    labels = [t.get_text() for lg in _legends(charts["latency.png"]) for t in lg.get_texts()]
    assert "SLO: TTFT p95 <= 2 s" in labels and "SLO: end-to-end p99 <= 10 s" in labels
    assert not any(label == "SLO threshold" for label in labels)


def test_load_phases_are_named_and_shaded(charts: dict[str, Figure]) -> None:
    for name, fig in charts.items():
        names = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "phase-label"]
        assert names == ["steady", "outage", "recovery"], name
        for ax in fig.axes:
            bands = [p for p in ax.patches if p.get_gid() == "phase-band"]
            assert len(bands) == 3 and len({to_hex(b.get_facecolor()) for b in bands}) == 2, name


def test_overlapping_fault_windows_get_their_own_legend_entry(computed: Computed, charts: dict[str, Figure]) -> None:
    entries = {k for lg in _legends(charts["traffic.png"]) for k in _entries(lg)}
    assert OVERLAP_LABEL not in entries  # one fault: no overlap to name
    scenario = outage_scenario() | {"load": {"phases": PHASES}}
    scenario["faults"] = [*scenario["faults"], {"upstream": "vllm", "kind": "outage", "start_s": 90, "end_s": 100}]
    run = from_lines(lines(outage_run(rate=10, seed=5)), lines(outage_events()), scenario, {"started_at": T0})
    fig = figures(compute(run))["traffic.png"]
    handles = {k: h for lg in _legends(fig) for k, h in _entries(lg).items()}
    assert FAULT_LABEL in handles and OVERLAP_LABEL in handles
    assert handles[OVERLAP_LABEL].get_alpha() > handles[FAULT_LABEL].get_alpha()


def test_a_provider_has_one_colour_in_every_chart(computed: Computed, charts: dict[str, Figure]) -> None:
    colours = provider_colours(computed)
    assert set(colours) >= {"openai", "vllm"} and len(set(colours.values())) == len(colours)
    (ax,) = charts["providers.png"].axes
    legend = ax.get_legend()
    assert legend is not None
    entries = _entries(legend)
    for provider in ("openai", "vllm"):
        assert to_hex(entries[provider].get_facecolor()) == colours[provider]
    (ax,) = charts["breakers.png"].axes
    ticks = {t.get_text(): to_hex(t.get_color()) for t in ax.get_yticklabels()}
    assert ticks["openai"] == colours["openai"]
