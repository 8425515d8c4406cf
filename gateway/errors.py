"""Errors, as clients see them and as the router sees them.

Client-facing errors are :class:`GatewayError`; each renders OpenAI's body
``{"error": {"message", "type", "param", "code"}}`` with its HTTP status and headers::

    GatewayError                      any error answered to a client
    ├── InvalidRequest        400     invalid_request_error (param names the field)
    ├── AuthenticationFailed  401     invalid_api_key
    ├── PermissionDenied      403     permission_denied
    │   └── ModelNotAllowed   403     model_not_allowed (the key's model allowlist)
    ├── QuotaExhausted        403     insufficient_quota (daily budget spent)
    │   └── BudgetExceeded    403     budget_exceeded (a dollar budget: gateway/budget/)
    ├── ModelNotFound         404     model_not_found
    ├── RequestTimeout        408     request_timeout (the request head or body came too slowly: gateway/connection/)
    ├── IdempotencyConflict   409     idempotency_in_progress (the first request with the key still runs)
    ├── PayloadTooLarge       413     request_too_large
    ├── IdempotencyMismatch   422     idempotency_key_reused (the key was used with another request body)
    ├── RateLimited           429     rate_limit_exceeded (type requests | tokens | concurrency)
    ├── HeaderFieldsTooLarge  431     request_header_fields_too_large (too many header fields, or too many bytes)
    ├── UpstreamFailed        502     upstream_error
    ├── Unavailable           503     service_unavailable (shed, breakers open, state store down)
    │   └── Overloaded        503     server_overloaded (the worker's connection cap)
    └── DeadlineExceeded      504     timeout

Upstream failures seen by the router are :class:`gateway.adapters.upstreamerrors.UpstreamError` subclasses.
"""

from __future__ import annotations

from typing import Any

import orjson


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"
    outcome: str | None = None  # the request's outcome when it ends with this error; None: from status and code

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if type is not None:
            self.type = type
        self.headers: dict[str, str] = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return orjson.dumps(self.body())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class QuotaExhausted(GatewayError):
    status = 403
    type = "insufficient_quota"
    code = "insufficient_quota"


class BudgetExceeded(QuotaExhausted):
    code = "budget_exceeded"


class IdempotencyConflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "idempotency_in_progress"


class IdempotencyMismatch(GatewayError):
    status = 422
    type = "invalid_request_error"
    code = "idempotency_key_reused"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class HeaderFieldsTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class UpstreamFailed(GatewayError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class Unavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class Overloaded(Unavailable):
    code = "server_overloaded"


class DeadlineExceeded(GatewayError):
    status = 504
    type = "server_error"
    code = "timeout"
