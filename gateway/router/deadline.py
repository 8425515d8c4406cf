"""Deadlines: one per request, and the time limits of each attempt inside it.

The request deadline is ``request_deadline_s`` after arrival; a client may shorten it (never lengthen it) with
``X-Request-Timeout: <seconds>``. Each attempt gets ``connect_s``, ``first_byte_s`` and ``stream_idle_s``, each
cut to the time left, and the whole attempt (a JSON body included, a stream to its last chunk) is bounded by the
deadline, so no attempt outlives the request: the adapter's one timer of the call (gateway/adapters/bound.py)
up to the response (a JSON body, a stream's head), the relay after it.

A timeout is the provider's fault only when the provider had its full configured limit: a limit cut short by
the deadline (the client's header, or time spent on earlier attempts) is the request running out of time
(:func:`cut_by_deadline`). Such a failure does not count against the provider's breaker or retry budget, so a
client sending a tiny ``X-Request-Timeout`` cannot open a breaker for everyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gateway.adapters.base import AttemptTimeouts
from gateway.adapters.upstreamerrors import DeadlineReached, UpstreamError, UpstreamStreamTimeout, UpstreamTimeout
from gateway.errors import DeadlineExceeded, InvalidRequest
from gateway.settings.router import TimeoutSettings

# DeadlineReached is the adapters' (gateway/adapters/bound.py raises it): the router's name for it stays here.
__all__ = ["AttemptLimits", "DeadlineReached", "attempt_timeouts", "cut_by_deadline", "request_deadline"]


def request_deadline(started: float, current: float, headers: Mapping[str, str], t: TimeoutSettings) -> float:
    """The deadline (monotonic) after applying the client's header to ``current`` (the configured one)."""
    raw = headers.get(t.deadline_header)
    if raw is None:
        return current
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidRequest(
            f"{t.deadline_header} must be a positive number of seconds, got {raw[:40]!r}.", param=t.deadline_header
        )
    return min(current, started + seconds)


def attempt_timeouts(deadline: float, now: float, t: TimeoutSettings) -> AttemptTimeouts:
    left = deadline - now
    if left <= 0:
        raise DeadlineExceeded("The request deadline passed before an upstream could answer.")
    return AttemptTimeouts(min(t.connect_s, left), min(t.first_byte_s, left), min(t.stream_idle_s, left))


class AttemptLimits:
    """The limits of each attempt under one set of settings (:func:`attempt_timeouts`; the full limits, which
    apply as long as the time left is at least the longest of them, are built once), and the verdict on a failure."""

    __slots__ = ("_full", "_longest", "_t")

    def __init__(self, t: TimeoutSettings) -> None:
        self._t = t
        self._full = AttemptTimeouts(t.connect_s, t.first_byte_s, t.stream_idle_s)
        self._longest = max(t.connect_s, t.first_byte_s, t.stream_idle_s)

    def at(self, deadline: float, now: float) -> AttemptTimeouts:
        if deadline - now >= self._longest:
            return self._full
        return attempt_timeouts(deadline, now, self._t)

    def deadline_or(self, exc: UpstreamError, limits: AttemptTimeouts) -> UpstreamError:
        """``exc``, or a :class:`DeadlineReached` when the request deadline (not the provider) caused it."""
        if isinstance(exc, DeadlineReached) or not cut_by_deadline(exc, limits, self._t):
            return exc
        return DeadlineReached(exc.provider, f"the request deadline cut the attempt short ({exc.detail})")


def cut_by_deadline(exc: UpstreamError, limits: AttemptTimeouts, t: TimeoutSettings) -> bool:
    """Was this failure the request deadline rather than the provider? Pure."""
    if isinstance(exc, DeadlineReached):
        return True
    if isinstance(exc, UpstreamTimeout):
        return limits.first_byte_s < t.first_byte_s
    if isinstance(exc, UpstreamStreamTimeout):
        return limits.idle_s < t.stream_idle_s
    return False
