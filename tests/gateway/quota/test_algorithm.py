"""Table tests of the pure decision core (LocalLimiter), driven by a FakeClock."""

from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.quota.algorithm import DAY_MS, WINDOW_MS, Decision, LocalLimiter, day_index
from gateway.rng import Rng
from gateway.settings.quota import Limits

LEASE = 600_000


def ms(clock: FakeClock) -> int:
    return int(clock.now() * 1000)


def test_rpm_admits_exactly_the_limit_then_says_when_the_oldest_expires() -> None:
    lim, clock = LocalLimiter(LEASE), FakeClock()
    limits = Limits(rpm=3)
    t0 = ms(clock)
    seen = []
    for i in range(3):
        d = lim.check("a", t0 + i * 1000, 1, limits)
        seen.append((d.admitted, d.req_used))
    assert seen == [(True, 1), (True, 2), (True, 3)]
    d = lim.check("a", t0 + 10_000, 1, limits)
    assert (d.admitted, d.kind, d.req_used) == (False, "requests", 3)
    assert d.retry_ms == WINDOW_MS - 10_000  # the oldest (t0) leaves at t0 + 60 s
    assert d.req_reset_ms == 2000 + WINDOW_MS - 10_000  # the newest leaves last
    assert not lim.check("a", t0 + WINDOW_MS - 1, 1, limits).admitted
    assert lim.check("a", t0 + WINDOW_MS, 1, limits).admitted


@pytest.mark.parametrize(
    ("limit", "burst_at_ms"),
    [(5, WINDOW_MS - 1), (5, WINDOW_MS - 100), (100, 59_999), (1, 30_000)],
)
def test_no_double_burst_at_a_window_edge(limit: int, burst_at_ms: int) -> None:
    """A fixed window would admit 2x the limit around a boundary; the sliding log admits the limit."""
    lim, t0 = LocalLimiter(LEASE), 1_767_225_600_000
    limits = Limits(rpm=limit)
    before = sum(lim.check("a", t0 + burst_at_ms, 1, limits).admitted for _ in range(limit * 2))
    after = sum(lim.check("a", t0 + burst_at_ms + 2, 1, limits).admitted for _ in range(limit * 2))
    assert (before, after) == (limit, 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_window_holds_at_most_the_limit(seed: int) -> None:
    rng = Rng(seed).child("arrivals")
    lim, t = LocalLimiter(LEASE), 1_767_225_600_000
    limits = Limits(rpm=20, tpm=500)
    admitted: list[tuple[int, int]] = []
    for _ in range(3000):
        t += rng.choice([0, 0, 1, 7, 50, 400, 2500])
        tokens = rng.randint(1, 60)
        if lim.check("a", t, tokens, limits).admitted:
            admitted.append((t, tokens))
    assert len(admitted) > 40
    for start, _ in admitted:
        inside = [tok for ts, tok in admitted if start <= ts < start + WINDOW_MS]
        assert len(inside) <= 20
        assert sum(inside) <= 500


def test_tokens_reserve_reject_and_retry_time() -> None:
    lim, t0 = LocalLimiter(LEASE), 1_000_000
    limits = Limits(tpm=100)
    a = lim.check("a", t0, 60, limits)
    b = lim.check("a", t0 + 5000, 30, limits)
    assert (a.admitted, b.admitted, b.tok_used) == (True, True, 90)
    c = lim.check("a", t0 + 6000, 20, limits)
    assert (c.admitted, c.kind, c.tok_used) == (False, "tokens", 90)
    assert c.retry_ms == WINDOW_MS - 6000  # freeing the first entry (60) is enough
    d = lim.check("a", t0 + 6000, 80, limits)
    assert d.retry_ms == 5000 + WINDOW_MS - 6000  # needs both entries gone
    big = lim.check("a", t0 + 6000, 101, limits)
    assert (big.admitted, big.kind, big.retry_ms) == (False, "too_large", -1)


def test_settle_replaces_the_reservation_once() -> None:
    lim, t0 = LocalLimiter(LEASE), 1_000_000
    limits = Limits(tpm=100, tpd=1000)
    d = lim.check("a", t0, 80, limits)
    assert d.handle is not None
    day = day_index(t0)
    assert lim.settle("a", d.handle, 30, day) == -50
    assert lim.settle("a", d.handle, 30, day) is None  # idempotent
    e = lim.check("a", t0 + 1, 70, limits)
    assert (e.admitted, e.tok_used, e.day_used) == (True, 100, 100)
    assert e.handle is not None
    assert lim.settle("a", e.handle, 95, day) == 25  # more than reserved is charged too
    f = lim.check("a", t0 + 2, 1, limits)
    assert (f.admitted, f.tok_used) == (False, 125)


def test_settle_after_the_lease_expired_keeps_the_estimate() -> None:
    lim, t0 = LocalLimiter(lease_ms=10_000), 1_000_000
    limits = Limits(tpd=1000)
    d = lim.check("a", t0, 50, limits)
    assert d.handle is not None
    lim.check("a", t0 + 10_000, 1, limits)  # expires the lease
    assert lim.settle("a", d.handle, 5, day_index(t0)) is None
    assert lim.check("a", t0 + 10_001, 1, limits).day_used == 52


def test_day_budget_resets_at_utc_midnight() -> None:
    lim = LocalLimiter(LEASE)
    midnight = 20_454 * DAY_MS
    limits = Limits(tpd=100)
    assert lim.check("a", midnight - 5000, 100, limits).admitted
    d = lim.check("a", midnight - 4000, 1, limits)
    assert (d.admitted, d.kind, d.retry_ms, d.day_used) == (False, "day", 4000, 100)
    assert lim.check("a", midnight, 100, limits).admitted


def test_concurrency_leases_release_on_settle_and_expire() -> None:
    lim, t0 = LocalLimiter(lease_ms=30_000), 1_000_000
    limits = Limits(max_concurrency=2)
    a, b = lim.check("a", t0, 1, limits), lim.check("a", t0, 1, limits)
    c = lim.check("a", t0, 1, limits)
    assert (a.admitted, b.admitted, c.admitted, c.kind, c.inflight) == (True, True, False, "concurrency", 2)
    assert a.handle is not None
    lim.settle("a", a.handle, 1, day_index(t0))
    assert lim.check("a", t0 + 1, 1, limits).admitted
    assert not lim.check("a", t0 + 2, 1, limits).admitted
    assert lim.check("a", t0 + 30_000, 1, limits).admitted  # a crashed holder's leases expire


def test_a_rejection_changes_nothing_and_consumers_are_independent() -> None:
    lim, t0 = LocalLimiter(LEASE), 1_000_000
    limits = Limits(rpm=1, tpm=10, tpd=10)
    assert lim.check("a", t0, 10, limits).admitted
    for _ in range(5):
        assert not lim.check("a", t0, 1, limits).admitted
    d = lim.check("b", t0, 10, limits)
    assert (d.admitted, d.req_used, d.tok_used, d.day_used) == (True, 1, 10, 10)


def test_decision_from_wire() -> None:
    d = Decision.from_wire([1, b"ok", b"7", 0, 3, 59000, 120, 59000, 500, 2])
    assert d == Decision(True, "ok", "7", 0, 3, 59000, 120, 59000, 500, 2)
    assert type(d) is Decision and (d.kind, d.handle, d.inflight) == ("ok", "7", 2)  # the named tuple itself
    assert Decision.from_wire([1, "ok", 7, 0, 3, "59000", 120, 59000, 500, 2]) == d  # str, and numbers as text
    r = Decision.from_wire([0, b"requests", 0, 1500, 3, 59000, 0, 0, 0, 0])
    assert (r.admitted, r.handle, r.retry_ms) == (False, None, 1500)
