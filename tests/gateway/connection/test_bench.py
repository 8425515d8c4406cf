"""What the limits cost a request (``pytest -m bench --benchmark-enable``; skipped in the ordinary test run): one
kept-alive ``GET`` parsed, answered by a minimal ASGI app and completed, through uvicorn's httptools protocol and
through the guarded one, on the fake transport and loop of fakes.py (no socket, no event-loop turn: what is left
is the protocol's own work). A benchmark, not a test of speed: nothing asserts a duration, only that each round
was answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.connection.protocol import GuardedHttpToolsProtocol
from gateway.settings.connection import ConnectionLimits

from .fakes import connection

pytestmark = pytest.mark.bench

REQUEST = (
    b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nUser-Agent: OpenAI/Python 1.99.0\r\nAccept: application/json\r\n"
    b"Authorization: Bearer sk-0123456789abcdef\r\nX-Stainless-Lang: python\r\nConnection: keep-alive\r\n\r\n"
)


@pytest.mark.parametrize("cls", [HttpToolsProtocol, GuardedHttpToolsProtocol], ids=["uvicorn", "guarded"])
def test_bench_one_kept_alive_request(benchmark: Any, cls: type[HttpToolsProtocol]) -> None:
    proto, transport, loop = connection(ConnectionLimits(max_requests_per_connection=10**9), cls=cls)

    def request() -> None:
        transport.out.clear()
        proto.data_received(REQUEST)
        loop.run_ready()

    benchmark(request)
    assert transport.out.startswith(b"HTTP/1.1 200 OK\r\n") and not transport.closed
