"""What to do after a failed attempt: retry the same provider, fail over to another, or give up.

Pure: ``decide(...)`` takes the failure and the request's situation and returns a :class:`RetryDecision`.
The caller checks the retry budget (gateway/router/retrybudget.py) and the deadline before acting on it.

Rules, in order:

1. Nothing is retried once a byte of a stream reached the client.
2. Not retryable (4xx client errors): give up. A stream cut or stall before any byte reached the client is
   retryable, like a timeout.
   ``insufficient_quota`` is the exception: fail over at once (the provider is skipped for a cool-off).
   So is an upstream 401 / 403 (:func:`provider_refused`): the provider refused the gateway's credentials or
   access, not the request, so another provider may serve it; the same one never will.
3. The attempt cap (``max_attempts``, failovers included) ends it.
4. Another untried provider is available: fail over, no wait.
5. Else retry a provider already tried after a wait: the upstream ``retry-after`` when it said one (up to
   ``retry_after_cap_s``; longer means give up), else exponential backoff with full jitter
   ``uniform(0, min(cap, base * 2**n))`` from the seeded RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamStreamCut,
    UpstreamStreamTimeout,
)
from gateway.settings.router import RetrySettings

Action = Literal["retry", "failover", "give_up"]


@dataclass(frozen=True, slots=True)
class RetryDecision:
    action: Action
    delay_s: float = 0.0
    reason: str = ""


def backoff(settings: RetrySettings, retry_no: int, rng: random.Random) -> float:
    """Full jitter: a uniform draw in [0, min(cap, base * 2**retry_no)]. ``retry_no`` counts from 0."""
    ceiling = min(settings.backoff_cap_s, settings.backoff_base_s * (2 ** min(retry_no, 30)))
    return rng.uniform(0.0, ceiling)


def provider_refused(error: UpstreamError) -> bool:
    """An upstream 401 / 403: the gateway's key or access at that provider is wrong (a provider fault)."""
    return isinstance(error, UpstreamClientError) and error.status in (401, 403)


def decide(
    error: UpstreamError,
    *,
    settings: RetrySettings,
    attempts_made: int,
    retries_made: int,
    stream_started: bool,
    failover_available: bool,
    rng: random.Random,
) -> RetryDecision:
    if stream_started:
        return RetryDecision("give_up", reason="stream_started")
    if isinstance(error, UpstreamQuotaExhausted):
        if attempts_made < settings.max_attempts and failover_available:
            return RetryDecision("failover", reason="insufficient_quota")
        return RetryDecision("give_up", reason="insufficient_quota")
    if provider_refused(error):
        if attempts_made < settings.max_attempts and failover_available:
            return RetryDecision("failover", reason="provider_refused")
        return RetryDecision("give_up", reason="provider_refused")
    # Nothing reached the client yet, so a stream cut or stall before the first chunk is as safe as a timeout.
    if not (error.retryable or isinstance(error, UpstreamStreamCut | UpstreamStreamTimeout)):
        return RetryDecision("give_up", reason="not_retryable")
    if attempts_made >= settings.max_attempts:
        return RetryDecision("give_up", reason="max_attempts")
    if failover_available:
        return RetryDecision("failover", reason=error.outcome)
    if isinstance(error, UpstreamRateLimited) and error.retry_after is not None:
        if error.retry_after > settings.retry_after_cap_s:
            return RetryDecision("give_up", reason="retry_after_too_long")
        return RetryDecision("retry", max(0.0, error.retry_after), reason="retry_after")
    return RetryDecision("retry", backoff(settings, retries_made, rng), reason=error.outcome)
