"""Burn-rate alerts on a hand-made log with known fire times.

One request ends every 0.25 s (t_end = 0.125 + 0.25 i) for 200 s; all fail in [100, 150). SLO 99 %, k = 360
(1 h -> 10 s, 5 m -> 0.833 s, 6 h -> 60 s, 30 m -> 5 s). The 14.4x rule needs > 14.4 % bad in 10 s (40 events):
the 6th failure, at 101.375 s. The 6x rule needs > 6 % of 240 events: the 15th failure, at 103.625 s.
"""

from __future__ import annotations

import polars as pl
import pytest

from reports.alerts import evaluate_alerts, time_compression
from reports.load import from_lines
from reports.slo import SloSpec, sli_events, slis
from tests.reports.factory import T0, lines, rec


def _events(fail_from: float = 100.0, fail_to: float = 150.0) -> tuple[pl.DataFrame, SloSpec]:
    recs = []
    for i in range(800):
        end = 0.125 + 0.25 * i
        bad = fail_from <= end < fail_to
        recs.append(rec(f"r{i}", end - 0.1, "error" if bad else "ok", e2e=0.1))
    run = from_lines(lines(recs), meta={"started_at": T0})
    spec = SloSpec(availability=0.99, alert_time_compression=360)
    return sli_events(run.requests, slis(spec)[0]), spec


def test_fire_times_and_time_to_detect() -> None:
    events, spec = _events()
    out = evaluate_alerts(events, 0.99, spec, duration_s=200, end_s=200, fault_start_s=100)
    fast, slow = out["rules"]
    assert fast["long_window_s"] == pytest.approx(10) and fast["short_window_s"] == pytest.approx(300 / 360)
    assert fast["fired_at_s"] == pytest.approx(101.375)
    assert fast["time_to_detect_s"] == pytest.approx(1.375)
    assert fast["time_to_detect_real_s"] == pytest.approx(1.375 * 360)
    assert fast["cleared_at_s"] == pytest.approx(149.875 + 300 / 360)
    assert slow["fired_at_s"] == pytest.approx(103.625)
    assert slow["time_to_detect_s"] == pytest.approx(3.625)
    assert not fast["fired_before_fault"]


def test_no_alert_without_errors() -> None:
    events, spec = _events(fail_from=1e9)
    out = evaluate_alerts(events, 0.99, spec, duration_s=200, end_s=200, fault_start_s=None)
    assert [r["fired"] for r in out["rules"]] == [False, False]
    assert all(r["time_to_detect_s"] is None for r in out["rules"])


def test_a_short_burst_below_threshold_does_not_page() -> None:
    events, spec = _events(fail_from=100.0, fail_to=101.0)  # 4 failures: 10 % of 40 < 14.4 %
    out = evaluate_alerts(events, 0.99, spec, duration_s=200, end_s=200, fault_start_s=100)
    assert out["rules"][0]["fired"] is False


def test_time_compression_modes() -> None:
    assert time_compression(SloSpec(), 180) == pytest.approx(21600 / 180)
    assert time_compression(SloSpec(alert_scaling="period"), 180) == pytest.approx(30 * 86400 / 180)
    assert time_compression(SloSpec(alert_time_compression=7), 180) == 7
