"""The guarded protocol on a fake transport and a fake loop (tests/gateway/connection/fakes.py): every limit, its
reply and its count, with time moved by hand."""

from __future__ import annotations

import orjson
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.connection.policy import ConnectionPolicy
from gateway.connection.protocol import LINGER_S
from gateway.settings.connection import ConnectionLimits

from .fakes import connection, end, feed, holding_app

LIMITS = ConnectionLimits(
    header_timeout_s=2.0,
    body_timeout_s=3.0,
    keep_alive_timeout_s=7.5,
    max_requests_per_connection=3,
    max_header_count=10,
    max_header_bytes=2048,
    max_connections=2,
)
GET = b"GET /v1/health HTTP/1.1\r\nHost: gw\r\n\r\n"


def _status(out: bytes | bytearray) -> int:
    return int(out.split(b" ", 2)[1])


def _error_code(out: bytes | bytearray) -> str:
    return str(orjson.loads(out.split(b"\r\n\r\n", 1)[1])["error"]["code"])


def test_a_connection_that_sends_nothing_is_closed_silently_at_the_header_timeout() -> None:
    closed: list[str] = []
    _, transport, loop = connection(LIMITS, closed=closed)
    loop.advance(1.9)
    assert not transport.closed
    loop.advance(0.2)
    assert transport.closed and transport.out == b""
    assert closed == ["header_timeout"]


def test_a_head_still_incomplete_at_the_header_timeout_gets_a_408() -> None:
    closed: list[str] = []
    proto, transport, loop = connection(LIMITS, closed=closed)
    feed(proto, b"GET /v1/health HTTP/1.1\r\nHo")
    loop.advance(1.0)
    feed(proto, b"st: gw\r\n")  # bytes keep coming, one header at a time: the clock does not restart
    loop.advance(1.0)
    assert transport.closed
    assert _status(transport.out) == 408 and _error_code(transport.out) == "request_timeout"
    assert closed == ["header_timeout"]


def test_a_whole_request_in_one_read_arms_no_head_timer_and_the_idle_one_is_the_keep_alive_setting() -> None:
    proto, transport, loop = connection(LIMITS)
    feed(proto, GET)
    assert _status(transport.out) == 200
    assert loop.pending() == [7.5]  # uvicorn's idle timer, from server.limits.keep_alive_timeout_s
    transport.out.clear()
    feed(proto, GET[:10])  # the next head comes in pieces: now its clock runs
    assert loop.pending() == [2.0]
    feed(proto, GET[10:])
    assert _status(transport.out) == 200 and loop.pending() == [7.5]


def test_the_last_allowed_request_of_a_connection_is_answered_with_connection_close() -> None:
    proto, transport, _ = connection(LIMITS)
    heads = []
    for _ in range(3):
        feed(proto, GET)
        heads.append(bytes(transport.out).lower())
        transport.out.clear()
    assert [b"connection: close" in h for h in heads] == [False, False, True]
    assert transport.closed


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(11)) + b"\r\n",
        b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"GET / HTTP/1.1\r\nx-big: " + b"a" * 2100 + b"\r\n\r\n",
    ],
    ids=["11 fields", "a long target", "a long value"],
)
def test_too_many_or_too_large_header_fields_get_a_431_then_a_half_close(head: bytes) -> None:
    closed: list[str] = []
    proto, transport, loop = connection(LIMITS, closed=closed)
    feed(proto, head)
    assert _status(transport.out) == 431 and _error_code(transport.out) == "request_header_fields_too_large"
    assert b"connection: close" in transport.out
    assert transport.eof and not transport.closed  # what the client still sends is read and dropped...
    written = len(transport.out)
    feed(proto, GET)
    assert len(transport.out) == written
    loop.advance(LINGER_S)
    assert transport.closed  # ...for a moment only
    assert closed == ["header_fields_too_large"]


def test_a_head_that_grows_past_the_size_limit_is_refused_before_it_ends() -> None:
    proto, transport, _ = connection(LIMITS)
    feed(proto, b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(4):
        assert transport.out == b""
        feed(proto, b"a" * 600)
    assert _status(transport.out) == 431


def test_the_head_limits_count_only_the_head_not_a_body_in_the_same_read() -> None:
    proto, transport, _ = connection(LIMITS)
    body = b"b" * 5000
    feed(proto, b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\r\n" + body)
    assert _status(transport.out) == 200


def test_a_request_on_a_connection_over_the_cap_gets_a_503_with_retry_after() -> None:
    closed: list[str] = []
    worker = ConnectionPolicy.build(LIMITS, closed.append)
    first, _, _ = connection(LIMITS, policy=worker)
    second, _, _ = connection(LIMITS, policy=worker)
    third, transport, _ = connection(LIMITS, policy=worker)
    feed(third, GET)
    assert _status(transport.out) == 503 and _error_code(transport.out) == "server_overloaded"
    assert b"retry-after: 1\r\n" in transport.out
    assert closed == ["over_capacity"]
    for proto in (first, second):  # the two under the cap are served
        feed(proto, GET)
        assert _status(proto.transport.out) == 200  # type: ignore[attr-defined]  # the fake transport's record

    again, t, _ = connection(LIMITS, policy=worker)  # refused connections do not take the cap: still over it
    feed(again, GET)
    assert _status(t.out) == 503
    first.connection_lost(None)  # one admitted connection ends: the next one is served
    again.connection_lost(None)
    third.connection_lost(None)
    fourth, t, _ = connection(LIMITS, policy=worker)
    feed(fourth, GET)
    assert _status(t.out) == 200
    assert worker.admitted.open == 2


def test_what_is_not_http_gets_an_openai_shaped_400() -> None:
    closed: list[str] = []
    proto, transport, _ = connection(LIMITS, closed=closed)
    feed(proto, b"HELLO THERE\r\n\r\n")
    assert _status(transport.out) == 400 and _error_code(transport.out) == "invalid_http_request"
    assert closed == ["invalid_http"]


def test_a_body_that_stalls_gets_a_408_and_a_body_that_keeps_coming_does_not() -> None:
    closed: list[str] = []
    proto, transport, loop = connection(LIMITS, app=holding_app, closed=closed)
    feed(proto, b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
    for _ in range(5):  # a read every 2 s, under the 3 s pause allowed, for 10 s
        loop.advance(2.0)
        feed(proto, b"a" * 10)
    assert not transport.closed
    loop.advance(3.0)
    assert transport.closed
    assert _status(transport.out) == 408 and _error_code(transport.out) == "request_timeout"
    assert closed == ["body_timeout"]
    end(loop)


def test_a_body_the_server_has_not_taken_yet_is_not_a_stalled_client() -> None:
    proto, transport, loop = connection(LIMITS, app=holding_app)
    feed(proto, b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 200000\r\n\r\n" + b"a" * 70_000)
    assert proto.flow.read_paused  # uvicorn stopped reading: the app has not taken the first 64 KiB
    loop.advance(30.0)
    assert not transport.closed
    end(loop)


def test_the_base_protocol_has_none_of_these_limits() -> None:
    """What the guarded protocol adds: uvicorn's own holds a silent connection forever."""
    _, transport, loop = connection(LIMITS, cls=HttpToolsProtocol)
    loop.advance(3600.0)
    assert not transport.closed


def test_pipelined_requests_are_answered_in_order() -> None:
    proto, transport, loop = connection(LIMITS)
    feed(proto, GET + GET.replace(b"/v1/health", b"/v1/models"))
    loop.run_ready()  # the second one starts once the first is answered
    assert transport.out.count(b"HTTP/1.1 200 OK\r\n") == 2 and not transport.closed


def test_a_pipelined_head_growing_while_a_reply_is_pending_is_cut_at_the_size_limit() -> None:
    closed: list[str] = []
    proto, transport, loop = connection(LIMITS, app=holding_app, closed=closed)
    feed(proto, GET + b"GET / HTTP/1.1\r\nx-big: ")  # the app holds the first; the second head has begun
    for _ in range(2):
        feed(proto, b"a" * 1000)
    assert not transport.closed
    feed(proto, b"a" * 1000)  # past 2048 bytes of head: the parser is not fed any more
    assert transport.closed and transport.out == b""  # a 431 would read as the reply to the first
    assert closed == ["header_fields_too_large"]
    end(loop)
