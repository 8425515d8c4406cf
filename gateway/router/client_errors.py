"""What a client is told about an upstream failure: its type and an OpenAI-shaped error, never internals."""

from __future__ import annotations

from gateway.adapters.errors import (
    UpstreamClientError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamStreamTimeout,
    UpstreamTimeout,
)
from gateway.errors import DeadlineExceeded, GatewayError, InvalidRequest, Unavailable, UpstreamFailed
from gateway.router.deadline import DeadlineReached


def client_error(exc: UpstreamError) -> GatewayError:
    """What a client is told about an upstream failure: its type, never the upstream's internals."""
    if isinstance(exc, UpstreamClientError):
        if exc.status in (400, 404, 413, 422):
            return InvalidRequest(f"The upstream rejected the request: {exc.detail}", code="upstream_rejected")
        return UpstreamFailed(f"The upstream provider refused the call (HTTP {exc.status}).")
    if isinstance(exc, DeadlineReached):
        return DeadlineExceeded("The request deadline passed before the upstream provider finished answering.")
    if isinstance(exc, UpstreamTimeout | UpstreamStreamTimeout):
        return DeadlineExceeded("The upstream provider did not answer in time.")
    if isinstance(exc, UpstreamRateLimited | UpstreamQuotaExhausted):
        return Unavailable(
            "That model is currently overloaded with other requests. You can retry your request.",
            headers={"retry-after": "1"},
        )
    if isinstance(exc, UpstreamServerError) and exc.status == 503:
        return Unavailable(
            "That model is currently overloaded with other requests. You can retry your request.",
            headers={"retry-after": "1"},
        )
    return UpstreamFailed("The upstream provider failed while processing your request.")
