"""Upstream failures, classified by the adapters so the router can decide on types::

    UpstreamError                         any failure talking to a provider
    ├── UpstreamConnectError              could not connect / connection refused or reset before a response
    ├── UpstreamTimeout                   no first byte (or first token) within the attempt's limit
    │   └── DeadlineReached               the request deadline ended the attempt
    ├── UpstreamStreamTimeout             a stream went silent past the idle limit after it started
    ├── UpstreamStreamCut                 a stream ended without [DONE] / the connection dropped mid-stream
    ├── UpstreamRateLimited        429    rate limit; ``retry_after`` seconds when the provider said
    ├── UpstreamQuotaExhausted     429    insufficient_quota: retrying does not help
    ├── UpstreamServerError        5xx
    └── UpstreamClientError        4xx    the request itself was refused (bad request, auth, context length)

``retryable`` says whether the same request may be tried again *before any byte reached the client*.
``outcome`` is the word written to the request log for the attempt.
"""

from __future__ import annotations


class UpstreamError(Exception):
    retryable = False
    outcome = "error"

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.detail = message
        self.status = status


class UpstreamConnectError(UpstreamError):
    retryable = True
    outcome = "connect_error"


class UpstreamTimeout(UpstreamError):
    retryable = True
    outcome = "timeout"


class DeadlineReached(UpstreamTimeout):
    """The request deadline ended an attempt (before its response, or in the middle of its stream)."""

    outcome = "deadline"


class UpstreamStreamTimeout(UpstreamError):
    outcome = "stream_timeout"


class UpstreamStreamCut(UpstreamError):
    outcome = "stream_cut"


class UpstreamRateLimited(UpstreamError):
    retryable = True
    outcome = "rate_limited"

    def __init__(self, provider: str, message: str, *, status: int | None = 429, retry_after: float | None) -> None:
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after


class UpstreamQuotaExhausted(UpstreamError):
    outcome = "insufficient_quota"


class UpstreamServerError(UpstreamError):
    retryable = True
    outcome = "server_error"


class UpstreamClientError(UpstreamError):
    outcome = "client_error"

    def __init__(self, provider: str, message: str, *, status: int | None, body: bytes = b"") -> None:
        super().__init__(provider, message, status=status)
        self.body = body


class NotTranslatable(UpstreamClientError):
    """A request the adapter cannot express for its provider (e.g. a tool kind Gemini lacks). Never sent; its
    message is the gateway's own and may reach the client."""
