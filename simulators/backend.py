"""One simulated backend: its profile, clock, seed, request counter, counters, capacity model and logs."""

from __future__ import annotations

from collections import deque
from typing import Any

from gateway.clock import Clock
from simulators.batching import Scheduler
from simulators.decide import Decision, Request, SimState, decide
from simulators.failures import Flavour
from simulators.profile import Flapping, Outage, Profile
from simulators.sampling import request_rng
from simulators.vllm_metrics import VllmMetrics


class Engine:
    """Decides requests and keeps what the app needs between them.

    ``decisions`` holds every decision (bounded by ``log_limit``); ``outcomes`` what was then observed
    (queue wait, time to first token, end-to-end time, in simulator seconds). Phase windows are measured from
    :meth:`start` (called on the first request if nobody called it) or from the last :meth:`set_profile`.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        flavour: Flavour,
        seed: int | str,
        name: str,
        clock: Clock,
        log_limit: int = 100_000,
    ) -> None:
        self.flavour = flavour
        self.seed = seed
        self.name = name
        self.clock = clock
        self.seq = 0
        self.decisions: deque[Decision] = deque(maxlen=log_limit)
        self.outcomes: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self.t0: float | None = None
        try:
            self.t0 = clock.monotonic()
        except RuntimeError:  # a loop clock outside a running loop: start on the first request
            self.t0 = None
        self._install(profile)

    def _install(self, profile: Profile) -> None:
        self.profile = profile
        self.state = SimState()
        self.scheduler = Scheduler(profile.capacity)
        sched = self.scheduler
        self.metrics = VllmMetrics(profile.model, lambda: sched.running, lambda: sched.waiting, sched.kv_cache_usage)

    def start(self) -> None:
        """Start the timeline now (needs a running loop for a loop clock)."""
        self.t0 = self.clock.monotonic()

    def elapsed(self) -> float:
        now = self.clock.monotonic()
        if self.t0 is None:
            self.t0 = now
        return now - self.t0

    def set_profile(self, profile: Profile) -> None:
        """Switch profile at run time: counters reset and the timeline restarts now; in-flight requests
        finish under the old capacity model."""
        self._install(profile)
        self.start()

    def reset(self, seed: int | str | None = None) -> None:
        """Back to a fresh start under the same profile (or a new seed): request numbers from 0, empty logs,
        counters and metrics cleared, the timeline restarted now. In-flight requests finish on the old queue."""
        if seed is not None:
            self.seed = seed
        self.seq = 0
        self.decisions.clear()
        self.outcomes.clear()
        self.set_profile(self.profile)

    def decide(self, req: Request) -> Decision:
        seq = self.seq
        self.seq += 1
        d = decide(self.profile, req, seq, self.elapsed(), request_rng(self.seed, self.name, seq), self.state)
        self.decisions.append(d)
        return d

    def decision_log(self) -> list[dict[str, Any]]:
        return [d.log() for d in self.decisions]

    def health_ok(self) -> bool:
        """False while a full outage (or a flapping phase's down half) with a server-side mode is in effect:
        a time window, toxicity 1, no request range."""
        t = self.elapsed() / self.profile.timeline.scale
        for ph in self.profile.timeline.phases:
            if not isinstance(ph, Outage | Flapping) or ph.toxicity < 1.0 or ph.from_request is not None:
                continue  # a partial outage leaves the engine alive
            if ph.covers(t, self.seq):
                dead = isinstance(ph, Outage) or ph.is_down(t)
                if dead and ph.mode in ("overloaded", "server_error", "connection_reset", "hang"):
                    return False
        return True
