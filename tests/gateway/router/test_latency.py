from __future__ import annotations

from gateway.router.latency import TtftWindow


def test_nearest_rank_quantile_needs_min_samples() -> None:
    w = TtftWindow(max_samples=100, window_s=60)
    for i in range(1, 20):
        w.observe("p/m", float(i), i / 10)
    assert w.quantile("p/m", 0.95, 20.0, min_samples=20) is None
    w.observe("p/m", 20.0, 2.0)
    assert w.quantile("p/m", 0.95, 20.0, min_samples=20) == 1.9  # the 19th of 20 sorted samples
    assert w.quantile("p/m", 0.5, 20.0, min_samples=20) == 1.0
    assert w.quantile("other/m", 0.95, 20.0, min_samples=1) is None


def test_old_samples_leave_but_the_newest_min_samples_stay() -> None:
    w = TtftWindow(max_samples=100, window_s=10)
    for i in range(10):
        w.observe("p/m", float(i), 5.0)  # a slow spell, long ago
    for i in range(5):
        w.observe("p/m", 100.0 + i, 0.1)
    assert w.quantile("p/m", 0.95, 105.0, min_samples=5) == 0.1  # the slow spell aged out
    assert w.quantile("p/m", 0.95, 1000.0, min_samples=5) == 0.1  # no answers since: the last estimate stays


def test_only_max_samples_are_kept() -> None:
    w = TtftWindow(max_samples=3, window_s=60)
    for v in (9.0, 1.0, 1.0, 1.0):
        w.observe("p/m", 0.0, v)
    assert w.quantile("p/m", 0.99, 0.0, min_samples=3) == 1.0
