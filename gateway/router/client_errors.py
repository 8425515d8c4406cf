"""What a client is told about an upstream failure: its type and an OpenAI-shaped error, never internals.

Every message is the gateway's own. An upstream's error text (which can name its models, its deployment, its
limits and the other side's wording) goes to the attempt's record, the log and the span, never to the client. The
one fact taken from it is a context window's size, a number: a request over the model's context length is a 400
``context_length_exceeded`` naming that limit when the upstream stated one.
"""

from __future__ import annotations

import re

from gateway.adapters.upstreamerrors import (
    NotTranslatable,
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

_CONTEXT = re.compile(r"(?:maximum context length|context (?:length|window))\D{0,40}?(\d{3,9})", re.IGNORECASE)


def client_error(exc: UpstreamError) -> GatewayError:
    """What a client is told about an upstream failure: its type, never the upstream's internals."""
    if isinstance(exc, UpstreamClientError):
        return _rejected(exc)
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


def _rejected(exc: UpstreamClientError) -> GatewayError:
    """An upstream 4xx: a request the model cannot take (400/413/422), or the gateway's own problem (others)."""
    if isinstance(exc, NotTranslatable):  # the gateway's own words: what this provider cannot be asked
        return InvalidRequest(exc.detail, code="upstream_rejected")
    if exc.status in (400, 413, 422):
        limit = context_limit(exc.detail)
        if limit is not None or "context_length" in exc.detail or b"context_length_exceeded" in exc.body:
            within = f" of {limit} tokens" if limit is not None else ""
            return InvalidRequest(
                f"This request exceeds the model's context window{within} (messages and completion together). "
                "Shorten the messages or lower max_tokens.",
                param="messages",
                code="context_length_exceeded",
            )
        return InvalidRequest("The upstream provider rejected the request as invalid.", code="upstream_rejected")
    if exc.status == 404:
        return UpstreamFailed("The upstream provider does not serve the model this request was routed to.")
    return UpstreamFailed(f"The upstream provider refused the call (HTTP {exc.status}).")


def context_limit(text: str) -> int | None:
    """The context window's size stated in an upstream's error text (OpenAI's and vLLM's wording), if any."""
    m = _CONTEXT.search(text)
    return int(m.group(1)) if m else None
