"""The outermost stage: request ids kept or drawn, and an unexpected exception turned into a generic 500."""

from __future__ import annotations

import io

import orjson

from gateway.call import Call, Reply
from gateway.clock import FakeClock
from gateway.observability.logs import EventLog
from gateway.requestid import RequestIdStage, pick_request_id
from gateway.rng import Rng
from tests.calls import build_call

SECRET = "prompt-text-7f3a91"


def _call() -> Call:
    return build_call()


async def test_an_unexpected_exception_is_a_generic_500_and_a_log_line_without_its_message() -> None:
    buf = io.StringIO()
    stage = RequestIdStage(EventLog(FakeClock(), stream=buf))

    async def broken(call: Call) -> Reply:
        raise KeyError(SECRET)

    reply = await stage(_call(), broken)
    assert reply.status == 500
    error = orjson.loads(reply.body or b"")["error"]
    assert error == {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert SECRET not in (reply.body or b"").decode()
    assert reply.headers["x-request-id"] == "req-1"
    line = orjson.loads(buf.getvalue())
    assert line["event"] == "unhandled_error" and line["level"] == "error"
    assert line["request_id"] == "req-1" and line["error"] == "KeyError"
    assert any("test_requestid.py" in f and "broken" in f for f in line["frames"])
    assert SECRET not in buf.getvalue()


def test_request_ids_are_kept_when_valid_and_drawn_from_the_seed_otherwise() -> None:
    assert pick_request_id("abc-1.2_3", Rng(1)) == "abc-1.2_3"
    drawn = [pick_request_id("bad id", Rng(1)), pick_request_id(None, Rng(1))]
    assert drawn[0] == drawn[1] and drawn[0].startswith("req_") and len(drawn[0]) == 4 + 24
    assert pick_request_id(None, Rng(2)) != drawn[0]
