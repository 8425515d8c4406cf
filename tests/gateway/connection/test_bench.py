"""What the limits cost a request (``pytest -m bench --benchmark-enable``; skipped in the ordinary test run): one
kept-alive ``GET`` parsed, answered by a minimal ASGI app and completed, through uvicorn's httptools protocol and
through the guarded one, on the fake transport of fakes.py and a uvloop loop that runs each ASGI task in place (no
socket, no event-loop turn: what is left is the protocol's own work, uvloop's timers included). A benchmark, not
a test of speed: nothing asserts a duration, only that each round was answered.

The instruction counts in docs/ARCHITECTURE.md are this round run 10,000 times under ``valgrind --tool=callgrind``,
minus a run of none.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.connection.policy import STATE_KEY, ConnectionPolicy
from gateway.connection.protocol import GuardedHttpToolsProtocol
from gateway.settings.connection import ConnectionLimits

from .fakes import Task, Transport, ok_app

pytestmark = pytest.mark.bench

REQUEST = (
    b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nUser-Agent: OpenAI/Python 1.99.0\r\nAccept: application/json\r\n"
    b"Authorization: Bearer sk-0123456789abcdef\r\nX-Stainless-Lang: python\r\nConnection: keep-alive\r\n\r\n"
)


class InPlaceLoop(uvloop.Loop):
    """uvloop, whose tasks run in place, in one step."""

    # Returns the fake Task of fakes.py (what uvicorn's protocol needs of one), not asyncio's.
    def create_task(self, coro: Coroutine[Any, Any, None], **_: Any) -> Task:  # type: ignore[override]
        task = Task(coro)
        task.step()
        return task


@pytest.mark.parametrize("cls", [HttpToolsProtocol, GuardedHttpToolsProtocol], ids=["uvicorn", "guarded"])
def test_bench_one_kept_alive_request(benchmark: Any, cls: type[HttpToolsProtocol]) -> None:
    loop = InPlaceLoop()
    config = Config(app=ok_app, log_config=None, lifespan="off", http="httptools", proxy_headers=False)
    config.load()
    policy = ConnectionPolicy.build(ConnectionLimits(max_requests_per_connection=10**9))
    proto = cls(config=config, server_state=ServerState(), app_state={STATE_KEY: policy}, _loop=loop)
    transport = Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]  # the fake transport records what is written

    def request() -> None:
        transport.out.clear()
        proto.data_received(REQUEST)

    try:
        benchmark(request)
        assert transport.out.startswith(b"HTTP/1.1 200 OK\r\n") and not transport.closed
    finally:
        proto.connection_lost(None)
        loop.close()
