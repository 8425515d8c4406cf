"""Per-request metric updates in plain numbers, folded into the prometheus_client children in bulk.

A finished request touches about a dozen counters and histograms. Through prometheus_client each update is a
few Python calls and a lock (about 5,000 instructions a counter increment, 7,500 a histogram observation); here
it is a dictionary update. :meth:`Tally.fold` adds what was tallied to the children themselves whenever the
registry is collected (:class:`FoldOnCollect`, registered first), so a scrape or a ``get_sample_value`` never sees
a value the tally still holds; the exposition is the one prometheus_client writes.

In multi-process mode (several workers: prometheus_client's values live in files) another worker may serve the
scrape from the files this one writes, so there a tally is ``direct``: every update goes to the child at once.

A child's running amount (:meth:`Tally.cell`) and running counts (:meth:`Tally.buckets`) are kept across folds
(zeroed, not replaced), so a hot path may hold them and add to them in place, without a call per update
(gateway/observability/requestmetrics.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.registry import Collector


class Tally:
    def __init__(self, *, direct: bool = False) -> None:
        self.direct = direct
        self._counts: dict[Any, list[float]] = {}  # counter or gauge child -> [amount to add]
        self._hists: dict[Any, list[float]] = {}  # histogram child -> [count per bucket ..., sum]
        self._sets: dict[Any, float] = {}  # gauge child -> its last value set since the last fold

    def cell(self, child: Any) -> list[float]:
        """``child``'s running amount: adding to ``cell[0]`` is ``child.inc`` (never a negative amount for a
        counter). The same list until the tally is dropped."""
        cell = self._counts.get(child)
        if cell is None:
            cell = self._counts[child] = [0.0]
        return cell

    def buckets(self, child: Any) -> list[float]:
        """``child``'s (a histogram child's) running counts per bucket, then its sum: see :func:`observe`. The same
        list until the tally is dropped."""
        hist = self._hists.get(child)
        if hist is None:
            hist = self._hists[child] = [0.0] * (len(child._upper_bounds) + 1)
        return hist

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """``child.inc(amount)``, tallied. A counter's negative amount raises, as prometheus_client's does."""
        if self.direct:
            child.inc(amount)
            return
        if amount < 0 and not hasattr(child, "dec"):
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.cell(child)[0] += amount

    def set(self, child: Any, value: float) -> None:
        """``child.set(value)`` (a gauge's), tallied: the last value set before a fold is the one folded."""
        if self.direct:
            child.set(value)
            return
        self._sets[child] = value

    def observe(self, child: Any, value: float) -> None:
        """``child.observe(value)``, tallied."""
        if self.direct:
            child.observe(value)
            return
        observe(self.buckets(child), child._upper_bounds, value)

    def fold(self) -> None:
        """Add everything tallied to the children, and zero it; set each gauge to its last value set."""
        if self._sets:
            sets, self._sets = self._sets, {}
            for child, value in sets.items():
                child.set(value)
        for child, cell in self._counts.items():
            amount = cell[0]
            if amount:
                cell[0] = 0.0
                child.inc(amount)
        for child, hist in self._hists.items():
            for i, n in enumerate(hist):
                if n:
                    hist[i] = 0.0
                    if i < len(child._buckets):
                        child._buckets[i].inc(n)
                    else:
                        child._sum.inc(n)


def observe(hist: list[float], bounds: Sequence[float], value: float) -> None:
    """A histogram observation in running counts (:meth:`Tally.buckets`): the bucket is the first whose upper bound
    (``bounds``: the child's ``_upper_bounds``) is at least ``value``, and ``value`` joins the sum."""
    if value == value:  # NaN falls in no bucket (prometheus_client's loop finds none)
        hist[bisect_left(bounds, value)] += 1.0
    hist[-1] += value


class FoldOnCollect(Collector):
    """Registered first in a registry: collecting the registry folds the tally before any metric is read."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        self._tally.fold()
        return []
