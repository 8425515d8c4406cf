"""Circuit breaker: the pure state machine of one breaker (one provider, or one provider and model).

::

    closed ──(failure rate >= failure_rate over window_s with >= min_calls, or consecutive_failures)──> open
    open ──(cooloff_s elapsed)──> half_open
    half_open ──(half_open_probes successes)──> closed
    half_open ──(any probe failure)──> open

Every transition is returned as a :class:`Transition` (an event for listeners: log, metric, request log).
Time is epoch seconds passed in (the state is shared between replicas, so it is wall time, from the injected
clock). Sharing and the local cache are in gateway/router/breakers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.settings.router import BreakerSettings


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    key: str
    from_state: State
    to_state: State
    at: float
    reason: str  # failure_rate | consecutive_failures | cooloff_elapsed | probe_failed | probes_succeeded | shared

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "from": str(self.from_state),
            "to": str(self.to_state),
            "reason": self.reason,
        }


class TransitionListener(Protocol):
    def on_transition(self, event: Transition) -> None: ...


class CircuitBreaker:
    __slots__ = (
        "_calls",
        "_fails",
        "_probes_admitted",
        "_probes_ok",
        "_s",
        "_slice",
        "_slots",
        "changed_at",
        "consecutive",
        "key",
        "open_until",
        "state",
    )

    def __init__(self, key: str, settings: BreakerSettings) -> None:
        self.key = key
        self._s = settings
        self._slice = settings.window_s / settings.buckets
        self.state = State.CLOSED
        self.open_until = 0.0
        self.changed_at = 0.0
        self.consecutive = 0
        self._slots = [-1] * settings.buckets
        self._calls = [0] * settings.buckets
        self._fails = [0] * settings.buckets
        self._probes_admitted = 0
        self._probes_ok = 0

    # -- reading -------------------------------------------------------------------------------------------
    def peek(self, now: float) -> State:
        """The state as of ``now`` without admitting anything (open past its cool-off reads as half_open)."""
        if self.state is State.OPEN and now >= self.open_until:
            return State.HALF_OPEN
        return self.state

    def window(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the sliding window."""
        slot = int(now // self._slice)
        n = len(self._slots)
        calls = fails = 0
        for i in range(n):
            if slot - n < self._slots[i] <= slot:
                calls += self._calls[i]
                fails += self._fails[i]
        return calls, fails

    # -- deciding ------------------------------------------------------------------------------------------
    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May an attempt go through now? In half_open, admits up to ``half_open_probes`` probes."""
        event = None
        if self.state is State.OPEN:
            if now < self.open_until:
                return False, None
            event = self._move(State.HALF_OPEN, now, "cooloff_elapsed")
        if self.state is State.HALF_OPEN:
            if self._probes_admitted >= self._s.half_open_probes:
                if now < self.changed_at + self._s.cooloff_s:
                    return False, event
                self._probes_admitted = self._probes_ok  # probes lost (cancelled): let new ones through
            self._probes_admitted += 1
        return True, event

    def release(self) -> None:
        """An admitted attempt ended without a verdict (cancelled, or a client error)."""
        if self.state is State.HALF_OPEN and self._probes_admitted > self._probes_ok:
            self._probes_admitted -= 1

    def record(self, ok: bool, now: float) -> Transition | None:
        if self.state is State.OPEN:
            return None  # an attempt admitted before the breaker opened
        if self.state is State.HALF_OPEN:
            if not ok:
                return self._open(now, "probe_failed")
            self._probes_ok += 1
            if self._probes_ok >= self._s.half_open_probes:
                return self._move(State.CLOSED, now, "probes_succeeded")
            return None
        self._add(ok, now)
        self.consecutive = 0 if ok else self.consecutive + 1
        if self._s.consecutive_failures and self.consecutive >= self._s.consecutive_failures:
            return self._open(now, "consecutive_failures")
        if ok:
            return None
        calls, fails = self.window(now)
        if calls >= self._s.min_calls and fails / calls >= self._s.failure_rate:
            return self._open(now, "failure_rate")
        return None

    def adopt(self, state: State, open_until: float, changed_at: float, now: float) -> Transition | None:
        """Take a newer state published by another replica."""
        if changed_at <= self.changed_at or state is State.HALF_OPEN:
            return None
        before = self.peek(now)
        self.open_until = open_until
        event = self._move(state, changed_at, "shared")
        return event if before is not state else None

    # -- internals -----------------------------------------------------------------------------------------
    def _open(self, now: float, reason: str) -> Transition:
        self.open_until = now + self._s.cooloff_s
        return self._move(State.OPEN, now, reason)

    def _move(self, to: State, now: float, reason: str) -> Transition:
        event = Transition(self.key, self.state, to, now, reason)
        self.state = to
        self.changed_at = now
        self._probes_admitted = self._probes_ok = 0
        if to is not State.HALF_OPEN:
            self.consecutive = 0
            self._slots = [-1] * len(self._slots)
        return event

    def _add(self, ok: bool, now: float) -> None:
        slot = int(now // self._slice)
        i = slot % len(self._slots)
        if self._slots[i] != slot:
            self._slots[i] = slot
            self._calls[i] = 0
            self._fails[i] = 0
        self._calls[i] += 1
        if not ok:
            self._fails[i] += 1
