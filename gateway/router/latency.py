"""Recent times to first byte per route, for a quantile: how long hedging waits before a second attempt.

Each route keeps its last ``max_samples`` samples no older than ``window_s`` (monotonic seconds, from the
injected clock), but never fewer than ``min_samples``: a route that stopped answering (it hangs) keeps its last
estimate rather than losing it. The quantile is the nearest-rank one, or None with fewer than ``min_samples``
samples in all. Pure:
time is passed in. Keyed by ``provider/model`` like :class:`gateway.router.selection.LatencyEwma`, so the state
of one configuration can be handed to the next.
"""

from __future__ import annotations

import math
from collections import deque


class TtftWindow:
    def __init__(self, max_samples: int, window_s: float) -> None:
        self._max = max_samples
        self._window_s = window_s
        self.samples: dict[str, deque[tuple[float, float]]] = {}  # route -> (monotonic time, seconds)

    def observe(self, key: str, now: float, seconds: float) -> None:
        d = self.samples.get(key)
        if d is None:
            d = self.samples[key] = deque(maxlen=self._max)
        d.append((now, seconds))

    def quantile(self, key: str, q: float, now: float, min_samples: int) -> float | None:
        """The nearest-rank ``q`` quantile of ``key``'s recent samples, or None when it has too few."""
        d = self.samples.get(key)
        if d is None:
            return None
        while len(d) > min_samples and d[0][0] < now - self._window_s:
            d.popleft()
        if len(d) < min_samples:
            return None
        values = sorted(v for _, v in d)
        return values[max(0, math.ceil(q * len(values)) - 1)]
