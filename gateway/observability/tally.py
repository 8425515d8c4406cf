"""Per-request metric updates in plain numbers, folded into the prometheus_client children in bulk.

A finished request touches about a dozen counters and histograms. Through prometheus_client each update is a
few Python calls and a lock (about 5,000 instructions a counter increment, 7,500 a histogram observation); here
it is a dictionary update. :meth:`Tally.fold` adds what was tallied to the children themselves whenever the
registry is collected (:class:`FoldOnCollect`, registered first), so a scrape or a ``get_sample_value`` never sees
a value the tally still holds; the exposition is the one prometheus_client writes.

In multi-process mode (several workers: prometheus_client's values live in files) another worker may serve the
scrape from the files this one writes, so there a tally is ``direct``: every update goes to the child at once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client.registry import Collector


class Tally:
    def __init__(self, *, direct: bool = False) -> None:
        self._direct = direct
        self._counts: dict[Any, float] = {}  # counter or gauge child -> amount to add
        self._hists: dict[Any, list[float]] = {}  # histogram child -> [count per bucket ..., sum]

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """``child.inc(amount)``, tallied. A counter's negative amount raises, as prometheus_client's does."""
        if self._direct:
            child.inc(amount)
            return
        if amount < 0 and not hasattr(child, "dec"):
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        counts = self._counts
        counts[child] = counts.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        """``child.observe(value)``, tallied: the bucket is the first whose upper bound is at least ``value``."""
        if self._direct:
            child.observe(value)
            return
        hist = self._hists.get(child)
        if hist is None:
            hist = self._hists[child] = [0.0] * (len(child._upper_bounds) + 1)
        if value == value:  # NaN falls in no bucket (prometheus_client's loop finds none)
            hist[bisect_left(child._upper_bounds, value)] += 1.0
        hist[-1] += value

    def fold(self) -> None:
        """Add everything tallied to the children, and forget it."""
        counts, self._counts = self._counts, {}
        hists, self._hists = self._hists, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, hist in hists.items():
            child._sum.inc(hist[-1])
            for i, n in enumerate(hist[:-1]):
                if n:
                    child._buckets[i].inc(n)


class FoldOnCollect(Collector):
    """Registered first in a registry: collecting the registry folds the tally before any metric is read."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        self._tally.fold()
        return []
