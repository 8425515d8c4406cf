"""Formatting rules of report.md: overspent budgets are shown as they are, table cells stay in their column."""

from __future__ import annotations

from reports.markdown import pct, table


def test_pct_shows_an_overspent_budget_uncapped() -> None:
    assert pct(16.42, 1) == "1,642.0 %"
    assert pct(1.0) == "100 %"
    assert pct(0.99) == "99.000 %"
    assert pct(None) == "n/a"


def test_table_cells_escape_pipes_and_newlines() -> None:
    out = table(["a", "b"], [["x|y", "line1\nline2"]])
    assert out.splitlines()[-1] == "| x\\|y | line1 line2 |"
