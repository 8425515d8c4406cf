"""What the connection protocol decides and answers, without uvicorn: the replies it writes before a request
reaches the app, the size check of a request head, the body's idle clock.

The app publishes its :class:`ConnectionPolicy` in the ASGI lifespan state under :data:`STATE_KEY` (gateway/app.py);
uvicorn hands that state to every connection's protocol (gateway/connection/protocol.py). When an app publishes
none, the first connection puts a policy with the default limits there, which counts nothing.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.errors import GatewayError, HeaderFieldsTooLarge, InvalidRequest, Overloaded, RequestTimeout
from gateway.settings.connection import ConnectionLimits

STATE_KEY = "faultline.connection_policy"

# Why a connection was closed or refused by a limit (the label of faultline_client_connections_closed_total).
HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
HEADERS_TOO_LARGE = "header_fields_too_large"
OVER_CAPACITY = "over_capacity"
INVALID_HTTP = "invalid_http"
REASONS = (HEADER_TIMEOUT, BODY_TIMEOUT, HEADERS_TOO_LARGE, OVER_CAPACITY, INVALID_HTTP)


@dataclass(frozen=True, slots=True)
class RawReply:
    """A whole HTTP/1.1 reply that ends its connection: the status line, then (after the server's own default
    headers, the date) the rest: content type, length, ``connection: close``, extra headers, the JSON body."""

    status_line: bytes
    rest: bytes

    @classmethod
    def of(cls, error: GatewayError) -> RawReply:
        body = error.to_json()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
        ]
        phrase = http.HTTPStatus(error.status).phrase.encode()
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return cls(b"HTTP/1.1 %d %s\r\n" % (error.status, phrase), lines + b"\r\n" + body)

    def render(self, default_headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
        return b"".join([self.status_line, *(n + b": " + v + b"\r\n" for n, v in default_headers), self.rest])


def _ignore(reason: str) -> None:
    return None


@dataclass(slots=True)
class Admitted:
    """The connections of one worker admitted under ``max_connections`` and still open. Refused connections are
    not counted: each lives at most its header timeout plus a second, and a client retrying at once would otherwise
    find the cap taken by its own refused connections."""

    open: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """The limits of one worker's connections, the replies they end with, the counter of what they closed
    (``closed(reason)``, one of :data:`REASONS`), and the count of its admitted connections."""

    limits: ConnectionLimits
    closed: Callable[[str], None]
    head_timed_out: RawReply
    body_timed_out: RawReply
    head_too_large: RawReply
    overloaded: RawReply
    malformed: RawReply
    admitted: Admitted

    @classmethod
    def build(cls, limits: ConnectionLimits, closed: Callable[[str], None] = _ignore) -> ConnectionPolicy:
        too_large = (
            f"The request's header fields are too large: at most {limits.max_header_count} fields and "
            f"{limits.max_header_bytes} bytes (request target, names and values) are accepted."
        )
        return cls(
            limits=limits,
            closed=closed,
            head_timed_out=RawReply.of(
                RequestTimeout(f"The request head was not received within {limits.header_timeout_s:g} s.")
            ),
            body_timed_out=RawReply.of(
                RequestTimeout(f"The request body paused for longer than {limits.body_timeout_s:g} s.")
            ),
            head_too_large=RawReply.of(HeaderFieldsTooLarge(too_large)),
            overloaded=RawReply.of(
                Overloaded(
                    "The server has too many open connections. Please retry shortly.",
                    headers={"retry-after": str(limits.retry_after_s)},
                )
            ),
            malformed=RawReply.of(InvalidRequest("The request is not valid HTTP/1.1.", code="invalid_http_request")),
            admitted=Admitted(),
        )


def head_size(url: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size a head is held to: its request target plus every header name and value."""
    return len(url) + sum(len(name) + len(value) for name, value in headers)
