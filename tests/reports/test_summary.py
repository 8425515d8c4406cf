"""The summary's fault-window split and headline figures on a hand-made log with known answers."""

from __future__ import annotations

import pytest

from reports.load import from_lines
from reports.summary import compute
from tests.reports.factory import T0, lines, outage_scenario, rec


def test_requests_split_by_arrival_inside_and_outside_fault_windows() -> None:
    recs = [rec("a", 5, "ok"), rec("b", 65, "error"), rec("c", 70, "ok", ttft=2.0), rec("d", 130, "ok")]
    recs.append(rec("q", 80, "quota_rejected", provider=None))
    s = compute(from_lines(lines(recs), scenario=outage_scenario(expectations=[]), meta={"started_at": T0})).summary
    assert s["fault_windows"] is not None
    during, outside = s["fault_windows"]["during_faults"], s["fault_windows"]["outside_faults"]
    assert (during["requests"], during["valid"], during["bad"], during["quota_rejected"]) == (3, 2, 1, 1)
    assert during["availability"] == pytest.approx(0.5) and during["ttft_p50"] == pytest.approx(2.0)
    assert (outside["requests"], outside["availability"]) == (2, 1.0)
    assert s["figures"]["availability"] == pytest.approx(3 / 4)
    assert s["figures"]["quota_rejected"] == 1


def test_no_fault_windows_without_faults() -> None:
    scenario = {**outage_scenario(expectations=[]), "faults": []}
    s = compute(from_lines(lines([rec("a", 1, "ok")]), scenario=scenario, meta={"started_at": T0})).summary
    assert s["fault_windows"] is None
