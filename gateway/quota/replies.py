"""What a quota decision looks like to a client: OpenAI-style rate-limit headers and errors. Pure.

Headers (only for the axes a consumer has a limit on)::

    x-ratelimit-limit-requests      RPM limit
    x-ratelimit-remaining-requests  RPM limit - requests in the current 60 s window
    x-ratelimit-reset-requests      time until that window is empty (Go duration: 1.574s), never beyond the
                                    60 s window (an entry written by a replica whose clock runs ahead)
    x-ratelimit-limit-tokens / -remaining-tokens / -reset-tokens     the same for TPM

A 429 adds ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``: when the rejected request would
fit. A 403 ``insufficient_quota`` (daily budget) and a request larger than the TPM limit add
``x-should-retry: false``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.errors import GatewayError, QuotaExhausted, RateLimited
from gateway.quota.algorithm import WINDOW_MS, Decision
from gateway.settings.quota import Limits


def go_duration(ms: int) -> str:
    """Format milliseconds like Go's ``time.Duration.String`` (millisecond resolution)."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    sec = str(rem // 1000) if rem % 1000 == 0 else f"{rem / 1000:.3f}".rstrip("0")
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return f"{out}{sec}s"


def _seconds(ms: int) -> str:
    """Seconds in OpenAI's message style: 1.574s, 20ms."""
    return f"{ms}ms" if ms < 1000 else f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"


_FULL_WINDOW = "1m0s"  # go_duration(WINDOW_MS): an admitted request's reset, its own entry being the newest


def _reset(ms: int) -> str:
    return _FULL_WINDOW if ms >= WINDOW_MS else go_duration(ms)


def ratelimit_headers(d: Decision, limits: Limits) -> dict[str, str]:
    rpm, tpm = limits.rpm, limits.tpm
    if rpm is not None and tpm is not None:  # one dict display: the usual case of both axes, on every admission
        used_req, used_tok = rpm - d.req_used, tpm - d.tok_used
        return {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-remaining-requests": str(used_req) if used_req > 0 else "0",
            "x-ratelimit-reset-requests": _reset(d.req_reset_ms),
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-tokens": str(used_tok) if used_tok > 0 else "0",
            "x-ratelimit-reset-tokens": _reset(d.tok_reset_ms),
        }
    h: dict[str, str] = {}
    if rpm is not None:
        h["x-ratelimit-limit-requests"] = str(rpm)
        h["x-ratelimit-remaining-requests"] = str(max(0, rpm - d.req_used))
        h["x-ratelimit-reset-requests"] = _reset(d.req_reset_ms)
    if tpm is not None:
        h["x-ratelimit-limit-tokens"] = str(tpm)
        h["x-ratelimit-remaining-tokens"] = str(max(0, tpm - d.tok_used))
        h["x-ratelimit-reset-tokens"] = _reset(d.tok_reset_ms)
    return h


def rejection(d: Decision, limits: Limits, *, model: str, consumer: str, tokens: int, now_ms: int) -> GatewayError:
    """The client error for a rejected decision."""
    headers = ratelimit_headers(d, limits)
    who = f"Rate limit reached for {model} by consumer {consumer}"
    if d.kind == "day":
        headers["x-should-retry"] = "false"
        if limits.tpd is not None and tokens > limits.tpd:  # would not fit tomorrow either
            return QuotaExhausted(
                f"Request too large for the daily token budget of consumer {consumer}: Limit {limits.tpd}, "
                f"Requested {tokens}. The input or output tokens must be reduced in order to run successfully.",
                headers=headers,
            )
        reset_at = datetime.fromtimestamp((now_ms + d.retry_ms) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return QuotaExhausted(
            f"You exceeded your current quota: daily token budget of consumer {consumer}: Limit {limits.tpd}, "
            f"Used {d.day_used}, Requested {tokens}. It resets at {reset_at} "
            f"(in {go_duration(d.retry_ms)}).",
            headers=headers,
        )
    if d.kind == "too_large":
        headers["x-should-retry"] = "false"
        return RateLimited(
            f"Request too large for {model} by consumer {consumer} on tokens per min (TPM): Limit {limits.tpm}, "
            f"Requested {tokens}. The input or output tokens must be reduced in order to run successfully.",
            type="tokens",
            headers=headers,
        )
    retry = max(1, d.retry_ms)
    headers["retry-after"] = str(-(-retry // 1000))
    headers["retry-after-ms"] = str(retry)
    wait = f"Please try again in {_seconds(retry)}."
    if d.kind == "concurrency":
        msg = (
            f"Concurrency limit reached for consumer {consumer}: Limit {limits.max_concurrency}, "
            f"In flight {d.inflight}, Requested 1. {wait}"
        )
        return RateLimited(msg, type="concurrency", headers=headers)
    if d.kind == "requests":
        msg = f"{who} on requests per min (RPM): Limit {limits.rpm}, Used {d.req_used}, Requested 1. {wait}"
        return RateLimited(msg, type="requests", headers=headers)
    msg = f"{who} on tokens per min (TPM): Limit {limits.tpm}, Used {d.tok_used}, Requested {tokens}. {wait}"
    return RateLimited(msg, type="tokens", headers=headers)
