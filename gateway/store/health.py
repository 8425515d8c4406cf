"""The state store's health: up or down, from the outcomes of round trips and probes. Pure, no I/O, no clock.

* Up: a failed round trip (error or timeout not excused by event-loop lag) counts; ``outage_after_failures`` in a
  row declare an outage. Any success resets the count.
* Down: requests do not call the store; a probe runs on its own task, the first one at once. The first success,
  of a probe or of a call that was already in flight, ends the outage.
* A false outage: one whose very first probe, sent the moment it was declared, succeeded. The store answered
  at once, so what looked like an outage was most likely the caller's own slowness; it is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Change = Literal["down", "up", "false_outage"] | None


@dataclass(slots=True)
class StoreHealth:
    outage_after_failures: int
    up: bool = True
    failures: int = 0  # consecutive failed round trips while up
    probes: int = 0  # probes answered (or failed) since the outage began

    def success(self) -> Change:
        self.failures = 0
        if self.up:
            return None
        self.up = True
        return "up"

    def failure(self) -> Change:
        if not self.up:
            return None
        self.failures += 1
        if self.failures < self.outage_after_failures:
            return None
        self.up, self.failures, self.probes = False, 0, 0
        return "down"

    def probed(self, ok: bool) -> Change:
        """The outcome of one probe while down."""
        if self.up:
            return None
        first = self.probes == 0
        self.probes += 1
        if not ok:
            return None
        self.up = True
        return "false_outage" if first else "up"

    def force_down(self) -> Change:
        """An outage known at once (the store is unreachable at start)."""
        if not self.up:
            return None
        self.up, self.failures, self.probes = False, 0, 0
        return "down"
