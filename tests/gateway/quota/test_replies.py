"""Rate-limit headers and errors, as clients see them."""

from __future__ import annotations

import pytest

from gateway.errors import QuotaExhausted, RateLimited
from gateway.quota.algorithm import Decision
from gateway.quota.replies import go_duration, ratelimit_headers, rejection
from gateway.settings.quota import Limits


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (-5, "0s"),
        (20, "20ms"),
        (999, "999ms"),
        (1000, "1s"),
        (1574, "1.574s"),
        (1500, "1.5s"),
        (59_999, "59.999s"),
        (60_000, "1m0s"),
        (360_000, "6m0s"),
        (3_661_000, "1h1m1s"),
        (3_600_000, "1h0m0s"),
        (86_399_500, "23h59m59.5s"),
    ],
)
def test_go_duration(ms: int, text: str) -> None:
    assert go_duration(ms) == text


def test_headers_only_for_limited_axes() -> None:
    d = Decision(True, "ok", "1", 0, req_used=3, req_reset_ms=59_000, tok_used=120, tok_reset_ms=1500)
    assert ratelimit_headers(d, Limits(rpm=100, tpm=1000)) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "97",
        "x-ratelimit-reset-requests": "59s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "880",
        "x-ratelimit-reset-tokens": "1.5s",
    }
    assert ratelimit_headers(d, Limits(tpd=5)) == {}
    over = Decision(True, "ok", "1", 0, tok_used=1200)
    assert ratelimit_headers(over, Limits(tpm=1000))["x-ratelimit-remaining-tokens"] == "0"


def test_requests_rejection_is_openai_shaped() -> None:
    d = Decision(False, "requests", None, 1574, req_used=100, req_reset_ms=59_000)
    err = rejection(d, Limits(rpm=100), model="gpt-4o-mini", consumer="team-a", tokens=40, now_ms=0)
    assert isinstance(err, RateLimited)
    assert (err.status, err.type, err.code) == (429, "requests", "rate_limit_exceeded")
    assert err.message == (
        "Rate limit reached for gpt-4o-mini by consumer team-a on requests per min (RPM): "
        "Limit 100, Used 100, Requested 1. Please try again in 1.574s."
    )
    assert err.headers["retry-after"] == "2"
    assert err.headers["retry-after-ms"] == "1574"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_and_concurrency_rejections() -> None:
    d = Decision(False, "tokens", None, 20, tok_used=990)
    err = rejection(d, Limits(tpm=1000), model="m", consumer="c", tokens=42, now_ms=0)
    assert (err.status, err.type) == (429, "tokens")
    assert "on tokens per min (TPM): Limit 1000, Used 990, Requested 42. Please try again in 20ms." in err.message
    assert err.headers["retry-after"] == "1"
    c = rejection(
        Decision(False, "concurrency", None, 1000, inflight=4),
        Limits(max_concurrency=4),
        model="m",
        consumer="c",
        tokens=1,
        now_ms=0,
    )
    assert (c.status, c.type, c.code) == (429, "concurrency", "rate_limit_exceeded")
    big = rejection(
        Decision(False, "too_large", None, -1), Limits(tpm=100), model="m", consumer="c", tokens=500, now_ms=0
    )
    assert big.type == "tokens" and big.headers["x-should-retry"] == "false"
    assert "retry-after" not in big.headers
    assert "Request too large for m" in big.message


def test_daily_budget_is_403_insufficient_quota_with_the_reset_time() -> None:
    now = 1_767_225_600_000 + 20 * 3_600_000  # 2026-01-01T20:00Z
    d = Decision(False, "day", None, 4 * 3_600_000, day_used=1000)
    err = rejection(d, Limits(tpd=1000), model="m", consumer="c", tokens=10, now_ms=now)
    assert isinstance(err, QuotaExhausted)
    assert (err.status, err.type, err.code) == (403, "insufficient_quota", "insufficient_quota")
    assert "resets at 2026-01-02T00:00:00Z (in 4h0m0s)" in err.message
    assert "Limit 1000, Used 1000, Requested 10" in err.message
    assert err.body()["error"]["param"] is None
    assert err.headers["x-should-retry"] == "false"


def test_a_request_larger_than_the_whole_daily_budget_says_so() -> None:
    d = Decision(False, "day", None, 3_600_000, day_used=0)
    err = rejection(d, Limits(tpd=100), model="m", consumer="c", tokens=300, now_ms=0)
    assert (err.status, err.code) == (403, "insufficient_quota")
    assert err.message.startswith(
        "Request too large for the daily token budget of consumer c: Limit 100, Requested 300."
    )
    assert "resets" not in err.message


def test_reset_headers_never_pass_the_window() -> None:
    """An entry written by a replica whose clock runs a little ahead would read as more than 60 s away."""
    d = Decision(True, "ok", "1", 0, req_used=1, req_reset_ms=60_013, tok_used=5, tok_reset_ms=61_000)
    h = ratelimit_headers(d, Limits(rpm=10, tpm=100))
    assert (h["x-ratelimit-reset-requests"], h["x-ratelimit-reset-tokens"]) == ("1m0s", "1m0s")
