from __future__ import annotations

from gateway.clock import FakeClock
from gateway.router.breaker import CircuitBreaker, State
from gateway.settings.router import BreakerSettings

S = BreakerSettings(
    window_s=10, buckets=10, min_calls=4, failure_rate=0.5, consecutive_failures=0, cooloff_s=5, half_open_probes=2
)


def test_opens_on_failure_rate_only_after_min_calls() -> None:
    b = CircuitBreaker("p", S)
    assert b.record(False, 0.0) is None
    assert b.record(False, 0.1) is None
    assert b.record(True, 0.2) is None
    ev = b.record(False, 0.3)  # 3 of 4 failed
    assert ev is not None and (ev.from_state, ev.to_state, ev.reason) == (State.CLOSED, State.OPEN, "failure_rate")
    assert b.allow(1.0) == (False, None)


def test_opens_on_consecutive_failures() -> None:
    b = CircuitBreaker("p", S.model_copy(update={"consecutive_failures": 3, "min_calls": 100}))
    for t in (0.0, 0.1):
        assert b.record(False, t) is None
    ev = b.record(False, 0.2)
    assert ev is not None and ev.reason == "consecutive_failures"


def test_old_failures_leave_the_window() -> None:
    b = CircuitBreaker("p", S)
    for t in (0.0, 0.1, 0.2):
        b.record(False, t)
    assert b.window(20.0) == (0, 0)
    assert b.record(False, 20.0) is None


def test_half_open_lets_k_probes_then_closes() -> None:
    clock = FakeClock(0.0)
    b = CircuitBreaker("p", S)
    for _ in range(4):
        b.record(False, clock.now())
    assert b.peek(clock.now()) is State.OPEN
    clock.advance(5.0)
    assert b.peek(clock.now()) is State.HALF_OPEN
    ok, ev = b.allow(clock.now())
    assert ok and ev is not None and ev.to_state is State.HALF_OPEN
    assert b.allow(clock.now()) == (True, None)
    assert b.allow(clock.now()) == (False, None)  # only k probes
    assert b.record(True, clock.now()) is None
    ev = b.record(True, clock.now())
    assert ev is not None and (ev.to_state, ev.reason) == (State.CLOSED, "probes_succeeded")
    assert b.allow(clock.now()) == (True, None)


def test_probe_failure_reopens_for_a_new_cooloff() -> None:
    b = CircuitBreaker("p", S)
    for _ in range(4):
        b.record(False, 0.0)
    b.allow(5.0)
    ev = b.record(False, 5.1)
    assert ev is not None and (ev.to_state, ev.reason) == (State.OPEN, "probe_failed")
    assert b.open_until == 10.1
    assert not b.allow(10.0)[0]


def test_released_probe_frees_its_slot() -> None:
    b = CircuitBreaker("p", S.model_copy(update={"half_open_probes": 1}))
    for _ in range(4):
        b.record(False, 0.0)
    assert b.allow(5.0)[0]
    assert not b.allow(5.0)[0]
    b.release()
    assert b.allow(5.0)[0]


def test_adopts_newer_shared_state_only() -> None:
    b = CircuitBreaker("p", S)
    ev = b.adopt(State.OPEN, open_until=20.0, changed_at=10.0, now=11.0)
    assert ev is not None and ev.reason == "shared" and b.peek(11.0) is State.OPEN
    assert b.adopt(State.CLOSED, open_until=0.0, changed_at=9.0, now=11.0) is None
    assert b.peek(11.0) is State.OPEN
    b.adopt(State.CLOSED, open_until=0.0, changed_at=12.0, now=12.0)
    assert b.peek(12.0) is State.CLOSED


SLOW = S.model_copy(update={"slow_call_s": 2.0, "slow_call_rate": 0.5})


def test_opens_on_slow_call_rate_only_after_min_calls() -> None:
    b = CircuitBreaker("p", SLOW)
    assert b.record(True, 0.0) is None
    assert b.slow(0.1) is None
    assert b.record(True, 0.2) is None  # 1 slow of 3 calls
    assert b.counts(0.2) == (3, 0, 1)
    ev = b.slow(0.3)  # 2 of 4 slow
    assert ev is not None and (ev.from_state, ev.to_state, ev.reason) == (State.CLOSED, State.OPEN, "slow_call_rate")
    assert b.open_until == 5.3 and b.allow(1.0) == (False, None)


def test_slow_calls_below_the_rate_leave_it_closed() -> None:
    b = CircuitBreaker("p", SLOW.model_copy(update={"slow_call_rate": 0.75}))
    for t in (0.0, 0.1, 0.2):
        assert b.slow(t) is None  # below min_calls
    assert b.record(True, 0.3) is None
    assert b.record(True, 0.4) is None  # 3 of 5 slow: 60 % < 75 %
    assert b.slow(0.5) is None  # 4 of 6: 67 %
    assert b.peek(0.5) is State.CLOSED
    ev = b.slow(0.6)  # 5 of 7: 71 %
    assert ev is None
    ev = b.slow(0.7)  # 6 of 8: 75 %
    assert ev is not None and ev.reason == "slow_call_rate"


def test_a_slow_call_that_then_fails_counts_once_as_a_call() -> None:
    b = CircuitBreaker("p", SLOW.model_copy(update={"slow_call_rate": 1.0, "min_calls": 3}))
    assert b.record(True, 0.0) is None
    assert b.slow(0.1) is None
    assert b.record(False, 2.5, counted=True) is None  # the slow call timed out: one call, slow and failed
    assert b.counts(2.5) == (2, 1, 1)
    assert b.record(True, 2.6) is None
    ev = b.record(False, 2.7)  # 2 failures of 4 calls: failure_rate 0.5
    assert ev is not None and ev.reason == "failure_rate"


def test_opens_on_consecutive_slow_calls_and_a_timely_answer_resets_the_count() -> None:
    b = CircuitBreaker("p", SLOW.model_copy(update={"consecutive_slow_calls": 3, "slow_call_rate": 1.0}))
    assert b.slow(0.0) is None and b.slow(0.1) is None
    assert b.record(True, 0.2) is None  # answered in time
    assert b.slow(0.3) is None and b.slow(0.4) is None
    assert b.record(True, 0.5, counted=True) is None  # a slow call's late answer does not reset it
    ev = b.slow(0.6)
    assert ev is not None and ev.reason == "consecutive_slow_calls"
    assert b.consecutive_slow == 0  # opening starts afresh


def test_a_slow_probe_reopens_and_fast_probes_close() -> None:
    clock = FakeClock(0.0)
    b = CircuitBreaker("p", SLOW)
    for _ in range(4):
        b.slow(clock.now())
    assert b.peek(clock.now()) is State.OPEN
    clock.advance(5.0)
    assert b.allow(clock.now())[0]
    assert b.slow(clock.now()) is not None  # the probe went slow
    assert b.peek(clock.now()) is State.OPEN and b.open_until == clock.now() + 5.0
    assert b.record(True, clock.now() + 1, counted=True) is None  # its late answer changes nothing
    clock.advance(5.0)
    assert b.allow(clock.now())[0] and b.allow(clock.now())[0]
    assert b.record(True, clock.now()) is None
    ev = b.record(True, clock.now())
    assert ev is not None and (ev.to_state, ev.reason) == (State.CLOSED, "probes_succeeded")
    assert b.counts(clock.now()) == (0, 0, 0)


def test_slow_calls_leave_the_window() -> None:
    b = CircuitBreaker("p", SLOW)
    for t in (0.0, 0.1, 0.2):
        b.slow(t)
    assert b.counts(20.0) == (0, 0, 0)
    assert b.slow(20.0) is None
    assert b.record(False, 20.1, counted=True) is None
    assert b.window(20.1) == (1, 1)
