"""The quota decision core: sliding-window logs, a daily counter and in-flight leases. No I/O.

The same algorithm runs in two places, with the same inputs and the same answers:

* ``check.lua`` / ``settle.lua`` on Redis — the shared, exact limiter (gateway/quota/redis_store.py);
* :class:`LocalLimiter` below — in process memory, used when the state store is unreachable and the policy is
  fail-open (with each replica's share of the limits), and by the table tests.

Units: times are integer milliseconds since the epoch (``now_ms``); tokens are integers. A request admitted at
``t`` occupies the window ``[t, t + WINDOW_MS)``: an entry expires when ``now - WINDOW_MS >= t``. So the
requests (or reserved tokens) admitted in any half-open interval of ``WINDOW_MS`` never exceed the limit.

Check order (first failing axis wins): day budget, concurrency, requests per minute, tokens per minute. A check
is all-or-nothing: a rejected request changes no counter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from gateway.settings.quota import Limits

WINDOW_MS = 60_000
DAY_MS = 86_400_000

Kind = Literal["ok", "day", "concurrency", "requests", "tokens", "too_large"]


class Decision(NamedTuple):
    """The outcome of one check. ``*_used`` are the counts after the check (after admission if admitted).

    ``retry_ms``: when a rejected request would fit (0 if admitted; -1 if it never can, e.g. ``too_large``).
    ``*_reset_ms``: time until that window is empty again (OpenAI's "resets to its initial state").
    A named tuple: one is built per request on the hot path, and a tuple is the cheapest immutable record.
    """

    admitted: bool
    kind: Kind
    handle: str | None = None  # identifies the reservation, for settle()
    retry_ms: int = 0
    req_used: int = 0
    req_reset_ms: int = 0
    tok_used: int = 0
    tok_reset_ms: int = 0
    day_used: int = 0
    inflight: int = 0

    @classmethod
    def from_wire(cls, raw: list[Any]) -> Decision:
        """Parse the array returned by check.lua: Lua numbers arrive as ints, strings as bytes (or str)."""
        return from_wire(raw)


_tuple_new = tuple.__new__


def from_wire(raw: list[Any]) -> Decision:
    """:meth:`Decision.from_wire`, built by ``tuple.__new__`` (every field given) without the named tuple's own
    ``__new__`` frame: one is parsed per limited request."""
    admitted, kind, handle, retry, req, req_reset, tok, tok_reset, day, inflight = raw
    fields = (
        admitted == 1,
        kind.decode() if isinstance(kind, bytes) else kind,  # check.lua answers one of the Kind names
        None if handle == 0 else (handle.decode() if isinstance(handle, bytes) else str(handle)),
        int(retry),
        int(req),
        int(req_reset),
        int(tok),
        int(tok_reset),
        int(day),
        int(inflight),
    )
    return _tuple_new(Decision, fields)


def day_index(now_ms: int) -> int:
    """UTC day number since the epoch."""
    return now_ms // DAY_MS


def ms_to_day_end(now_ms: int) -> int:
    return (day_index(now_ms) + 1) * DAY_MS - now_ms


@dataclass(slots=True)
class _Consumer:
    seq: int = 0
    reqs: deque[tuple[int, str]] = field(default_factory=deque)  # (ts, handle), oldest first
    toks: deque[tuple[int, str]] = field(default_factory=deque)
    weights: dict[str, int] = field(default_factory=dict)  # handle -> tokens in the TPM window
    tok_sum: int = 0
    days: dict[int, int] = field(default_factory=dict)  # day index -> tokens charged
    leases: dict[str, int] = field(default_factory=dict)  # handle -> lease expiry (ms)
    reserved: dict[str, int] = field(default_factory=dict)  # handle -> tokens reserved, until settled

    def expire(self, now_ms: int) -> None:
        edge = now_ms - WINDOW_MS
        while self.reqs and self.reqs[0][0] <= edge:
            self.reqs.popleft()
        while self.toks and self.toks[0][0] <= edge:
            _, h = self.toks.popleft()
            self.tok_sum -= self.weights.pop(h, 0)
        for h in [h for h, exp in self.leases.items() if exp <= now_ms]:
            del self.leases[h]
            self.reserved.pop(h, None)
        today = day_index(now_ms)
        for d in [d for d in self.days if d < today - 1]:
            del self.days[d]


class LocalLimiter:
    """The decision core over in-memory state (one process). Mirrors check.lua / settle.lua exactly."""

    def __init__(self, lease_ms: int) -> None:
        self._lease_ms = lease_ms
        self._state: dict[str, _Consumer] = {}

    def check(self, consumer: str, now_ms: int, tokens: int, limits: Limits) -> Decision:
        st = self._state.setdefault(consumer, _Consumer())
        st.expire(now_ms)
        day = day_index(now_ms)
        day_used = st.days.get(day, 0)
        inflight = len(st.leases)

        def reject(kind: Kind, retry_ms: int) -> Decision:
            return Decision(False, kind, None, retry_ms, *_usage(st, now_ms), day_used, inflight)

        if limits.tpd is not None and day_used + tokens > limits.tpd:
            return reject("day", ms_to_day_end(now_ms))
        if limits.max_concurrency is not None and inflight >= limits.max_concurrency:
            return reject("concurrency", 1000)
        if limits.rpm is not None and len(st.reqs) + 1 > limits.rpm:
            oldest_needed = st.reqs[len(st.reqs) - limits.rpm][0]
            return reject("requests", oldest_needed + WINDOW_MS - now_ms)
        if limits.tpm is not None:
            if tokens > limits.tpm:
                return reject("too_large", -1)
            if st.tok_sum + tokens > limits.tpm:
                need, freed, at = st.tok_sum + tokens - limits.tpm, 0, now_ms
                for ts, h in st.toks:
                    freed += st.weights.get(h, 0)
                    at = ts
                    if freed >= need:
                        break
                return reject("tokens", at + WINDOW_MS - now_ms)

        if limits.tpd is not None:  # no day counter for a consumer without a daily budget
            day_used += tokens
            st.days[day] = day_used
        return self._admit(st, now_ms, tokens, limits, day_used)

    def _admit(self, st: _Consumer, now_ms: int, tokens: int, limits: Limits, day_used: int) -> Decision:
        """Write an admitted request's entries: the logs of its limited axes, its lease and reservation."""
        st.seq += 1
        handle = str(st.seq)
        if limits.rpm is not None:
            st.reqs.append((now_ms, handle))
        if limits.tpm is not None:
            st.toks.append((now_ms, handle))
            st.weights[handle] = tokens
            st.tok_sum += tokens
        st.leases[handle] = now_ms + self._lease_ms
        st.reserved[handle] = tokens
        return Decision(True, "ok", handle, 0, *_usage(st, now_ms), day_used, len(st.leases))

    def seed_day(self, consumer: str, day: int, used: int) -> None:
        """Count at least ``used`` tokens on ``day`` (the share of the day's use known from elsewhere)."""
        st = self._state.setdefault(consumer, _Consumer())
        st.days[day] = max(st.days.get(day, 0), used)

    def settle(self, consumer: str, handle: str, actual: int, day: int) -> int | None:
        """Replace the reservation with the real usage, once. Returns the token delta applied, or ``None``
        when the handle is unknown (already settled, or its lease expired: the estimate then stands)."""
        st = self._state.get(consumer)
        if st is None or handle not in st.leases:
            return None
        del st.leases[handle]
        delta = actual - st.reserved.pop(handle, actual)
        if delta:
            if handle in st.weights:
                st.weights[handle] += delta
                st.tok_sum += delta
            if day in st.days:
                st.days[day] += delta
        return delta


def _usage(st: _Consumer, now_ms: int) -> tuple[int, int, int, int]:
    req_reset = st.reqs[-1][0] + WINDOW_MS - now_ms if st.reqs else 0
    tok_reset = st.toks[-1][0] + WINDOW_MS - now_ms if st.toks else 0
    return len(st.reqs), req_reset, st.tok_sum, tok_reset
