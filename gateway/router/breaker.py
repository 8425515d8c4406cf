"""Circuit breaker: the pure state machine of one breaker (one provider, or one provider and model).

::

    closed ──(failure rate >= failure_rate over window_s with >= min_calls, or consecutive_failures)──> open
    closed ──(slow-call rate >= slow_call_rate over window_s with >= min_calls, or consecutive_slow_calls)──> open
    open ──(cooloff_s elapsed)──> half_open
    half_open ──(half_open_probes successes)──> closed
    half_open ──(any probe failure, or any probe slower than slow_call_s)──> open

A call counts in the window once, when its first verdict is known: when it ends (:meth:`CircuitBreaker.record`),
or earlier, the moment it has run for ``slow_call_s`` without an answer (:meth:`CircuitBreaker.slow`: a hung
upstream opens the breaker after ``slow_call_s``, not after the first-byte timeout). A slow call that then fails
adds its failure to the window without counting the call again (``counted``); a call that times out is both slow
and failed. Slow-call breaking is off while ``slow_call_s`` is unset.

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


# The states as module constants: a member read through ``State`` goes through the enum type's ``__getattr__``
# hook, several times dearer than a global, on every call of the methods below.
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN


@dataclass(frozen=True, slots=True)
class Transition:
    key: str
    from_state: State
    to_state: State
    at: float
    # failure_rate | consecutive_failures | slow_call_rate | consecutive_slow_calls | cooloff_elapsed | probe_failed |
    # probe_slow | probes_succeeded | shared
    reason: str

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
        "_consecutive_failures",
        "_fails",
        "_probes_admitted",
        "_probes_ok",
        "_s",
        "_slice",
        "_slots",
        "_slow",
        "changed_at",
        "consecutive",
        "consecutive_slow",
        "key",
        "open_until",
        "state",
    )

    def __init__(self, key: str, settings: BreakerSettings) -> None:
        self.key = key
        self._s = settings
        self._slice = settings.window_s / settings.buckets
        self._consecutive_failures = settings.consecutive_failures  # read on every verdict
        self.state = _CLOSED
        self.open_until = 0.0
        self.changed_at = 0.0
        self.consecutive = 0
        self.consecutive_slow = 0
        self._slots = [-1] * settings.buckets
        self._calls = [0] * settings.buckets
        self._fails = [0] * settings.buckets
        self._slow = [0] * settings.buckets
        self._probes_admitted = 0
        self._probes_ok = 0

    # -- reading -------------------------------------------------------------------------------------------
    def peek(self, now: float) -> State:
        """The state as of ``now`` without admitting anything (open past its cool-off reads as half_open)."""
        if self.state is _OPEN and now >= self.open_until:
            return _HALF_OPEN
        return self.state

    def window(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the sliding window."""
        calls, fails, _ = self.counts(now)
        return calls, fails

    def counts(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the sliding window. A slow call's failure may land in a later slice
        than the call: failures are capped at the calls."""
        slot = int(now // self._slice)
        n = len(self._slots)
        calls = fails = slow = 0
        for i in range(n):
            if slot - n < self._slots[i] <= slot:
                calls += self._calls[i]
                fails += self._fails[i]
                slow += self._slow[i]
        return calls, min(fails, calls), slow

    # -- deciding ------------------------------------------------------------------------------------------
    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May an attempt go through now? In half_open, admits up to ``half_open_probes`` probes."""
        event = None
        if self.state is _OPEN:
            if now < self.open_until:
                return False, None
            event = self._move(_HALF_OPEN, now, "cooloff_elapsed")
        if self.state is _HALF_OPEN:
            if self._probes_admitted >= self._s.half_open_probes:
                if now < self.changed_at + self._s.cooloff_s:
                    return False, event
                self._probes_admitted = self._probes_ok  # probes lost (cancelled): let new ones through
            self._probes_admitted += 1
        return True, event

    def release(self) -> None:
        """An admitted attempt ended without a verdict (cancelled, or a client error)."""
        if self.state is _HALF_OPEN and self._probes_admitted > self._probes_ok:
            self._probes_admitted -= 1

    def record(self, ok: bool, now: float, *, counted: bool = False) -> Transition | None:
        """The verdict of a call that ended; ``counted``: :meth:`slow` counted the call already."""
        if self.state is _OPEN:
            return None  # an attempt admitted before the breaker opened
        if self.state is _HALF_OPEN:
            if not ok:
                return self._open(now, "probe_failed")
            self._probes_ok += 1
            if self._probes_ok >= self._s.half_open_probes:
                return self._move(_CLOSED, now, "probes_succeeded")
            return None
        self._add(now, call=not counted, failed=not ok)
        self.consecutive = 0 if ok else self.consecutive + 1
        if ok and not counted:
            self.consecutive_slow = 0  # a call that answered in time
        if self._consecutive_failures and self.consecutive >= self._consecutive_failures:
            return self._open(now, "consecutive_failures")
        if ok:
            return None
        calls, fails, _ = self.counts(now)
        if calls >= self._s.min_calls and fails / calls >= self._s.failure_rate:
            return self._open(now, "failure_rate")
        return None

    def slow(self, now: float) -> Transition | None:
        """A call admitted by this breaker has run for ``slow_call_s`` without an answer: it counts now, as a
        slow call (its verdict, when it ends, goes to :meth:`record` with ``counted``)."""
        if self.state is _OPEN:
            return None
        if self.state is _HALF_OPEN:
            return self._open(now, "probe_slow")
        self._add(now, call=True, slow=True)
        self.consecutive_slow += 1
        s = self._s
        if s.consecutive_slow_calls and self.consecutive_slow >= s.consecutive_slow_calls:
            return self._open(now, "consecutive_slow_calls")
        calls, _, slow = self.counts(now)
        if calls >= s.min_calls and slow / calls >= s.slow_call_rate:
            return self._open(now, "slow_call_rate")
        return None

    def adopt(self, state: State, open_until: float, changed_at: float, now: float) -> Transition | None:
        """Take a newer state published by another replica."""
        if changed_at <= self.changed_at or state is _HALF_OPEN:
            return None
        before = self.peek(now)
        self.open_until = open_until
        event = self._move(state, changed_at, "shared")
        return event if before is not state else None

    # -- internals -----------------------------------------------------------------------------------------
    def _open(self, now: float, reason: str) -> Transition:
        self.open_until = now + self._s.cooloff_s
        return self._move(_OPEN, now, reason)

    def _move(self, to: State, now: float, reason: str) -> Transition:
        event = Transition(self.key, self.state, to, now, reason)
        self.state = to
        self.changed_at = now
        self._probes_admitted = self._probes_ok = 0
        if to is not _HALF_OPEN:
            self.consecutive = self.consecutive_slow = 0
            self._slots = [-1] * len(self._slots)
        return event

    def _add(self, now: float, *, call: bool = True, failed: bool = False, slow: bool = False) -> None:
        slot = int(now // self._slice)
        i = slot % len(self._slots)
        if self._slots[i] != slot:
            self._slots[i] = slot
            self._calls[i] = self._fails[i] = self._slow[i] = 0
        self._calls[i] += call
        self._fails[i] += failed
        self._slow[i] += slow
