from __future__ import annotations

import pytest

from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamStreamCut,
    UpstreamTimeout,
)
from gateway.rng import Rng
from gateway.router.retry import RetryDecision, backoff, decide
from gateway.settings.router import RetrySettings

S = RetrySettings(max_attempts=3, backoff_base_s=0.1, backoff_cap_s=2.0, retry_after_cap_s=5.0)


def _decide(err: UpstreamError, *, attempts: int = 1, started: bool = False, failover: bool = False) -> RetryDecision:
    return decide(
        err,
        settings=S,
        attempts_made=attempts,
        retries_made=attempts - 1,
        stream_started=started,
        failover_available=failover,
        rng=Rng(1),
    )


@pytest.mark.parametrize(
    ("err", "attempts", "started", "failover", "action", "reason"),
    [
        (UpstreamServerError("p", "x", status=503), 1, False, True, "failover", "server_error"),
        (UpstreamServerError("p", "x", status=500), 1, False, False, "retry", "server_error"),
        (UpstreamConnectError("p", "x"), 1, False, False, "retry", "connect_error"),
        (UpstreamTimeout("p", "x"), 1, False, True, "failover", "timeout"),
        (UpstreamServerError("p", "x", status=502), 1, True, True, "give_up", "stream_started"),
        (UpstreamServerError("p", "x", status=502), 3, False, True, "give_up", "max_attempts"),
        (UpstreamClientError("p", "x", status=400), 1, False, True, "give_up", "not_retryable"),
        (UpstreamClientError("p", "x", status=401), 1, False, True, "failover", "provider_refused"),
        (UpstreamClientError("p", "x", status=403), 1, False, False, "give_up", "provider_refused"),
        (UpstreamClientError("p", "x", status=401), 3, False, True, "give_up", "provider_refused"),
        (UpstreamQuotaExhausted("p", "x", status=429), 1, False, True, "failover", "insufficient_quota"),
        (UpstreamQuotaExhausted("p", "x", status=429), 1, False, False, "give_up", "insufficient_quota"),
        (UpstreamStreamCut("p", "x"), 1, False, False, "retry", "stream_cut"),
        (UpstreamStreamCut("p", "x"), 1, True, False, "give_up", "stream_started"),
        (UpstreamRateLimited("p", "x", retry_after=9.0), 1, False, False, "give_up", "retry_after_too_long"),
        (UpstreamRateLimited("p", "x", retry_after=9.0), 1, False, True, "failover", "rate_limited"),
    ],
)
def test_decisions(err: UpstreamError, attempts: int, started: bool, failover: bool, action: str, reason: str) -> None:
    d = _decide(err, attempts=attempts, started=started, failover=failover)
    assert (d.action, d.reason) == (action, reason)


def test_retry_after_is_honoured() -> None:
    d = _decide(UpstreamRateLimited("p", "x", retry_after=1.5))
    assert (d.action, d.delay_s, d.reason) == ("retry", 1.5, "retry_after")


def test_full_jitter_backoff_is_bounded_and_seeded() -> None:
    waits = [backoff(S, n, Rng(7)) for n in range(8)]
    assert waits == [backoff(S, n, Rng(7)) for n in range(8)]
    for n, w in enumerate(waits):
        assert 0 <= w <= min(S.backoff_cap_s, S.backoff_base_s * 2**n)
    rng = Rng(3)
    draws = [backoff(S, 5, rng) for _ in range(200)]
    assert max(draws) <= 2.0 and min(draws) < 0.5  # full jitter spreads over [0, cap]
