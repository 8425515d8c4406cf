"""Stage 1: the request id, and the one place where errors become OpenAI-shaped replies.

A client's ``X-Request-ID`` is kept when it matches ``[A-Za-z0-9._-]{1,128}``; otherwise one is drawn from the
seeded RNG. It is echoed on every reply and forwarded upstream.
"""

from __future__ import annotations

import re

from gateway.call import Call, Handler, Reply
from gateway.errors import GatewayError
from gateway.observability.logs import EventLog
from gateway.rng import Rng

_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def pick_request_id(header: str | None, rng: Rng) -> str:
    if header is not None and _VALID.fullmatch(header):
        return header
    return "req_" + rng.hex_id(12)


def error_reply(exc: GatewayError, call: Call) -> Reply:
    call.record.status = exc.status
    call.record.error_type = exc.code or exc.type
    return Reply(status=exc.status, headers={**call.response_headers, **exc.headers}, body=exc.to_json())


class RequestIdStage:
    """Outermost stage: stamps the id on the reply; renders any error, never leaking internals."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        call.response_headers["x-request-id"] = call.request_id
        try:
            reply = await next_(call)
        except GatewayError as exc:
            return error_reply(exc, call)
        except Exception as exc:
            self._log.unhandled(call.request_id, exc)
            return error_reply(GatewayError("The server had an error while processing your request."), call)
        reply.headers.update(call.response_headers)
        return reply
