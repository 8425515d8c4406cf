"""CPU cost of one request through the whole gateway pipeline, in process: no sockets, no HTTP server.

The upstream is a canned ASGI app behind the in-process transport, so the figure is the gateway's own work per
request (auth, parse, quota on the embedded store, routing, adapter, accounting, telemetry), measured as process
CPU time over many sequential requests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import fakeredis
import orjson

from gateway.app import create_app
from gateway.config import Settings
from gateway.transport import AsgiTransport

Message = MutableMapping[str, Any]

CANNED = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
)


async def _canned(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": CANNED})


async def cpu_per_request(settings: Settings, upstream_prefix: str, key: str, body: bytes, n: int = 3000) -> float:
    """Microseconds of CPU per request, after a warm-up."""
    app = create_app(
        settings, state=fakeredis.FakeAsyncRedis(), upstream_transport=AsgiTransport({upstream_prefix: _canned})
    )
    # The log lines are written as in production (one write per request), to the null device instead of stderr.
    devnull = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - the null device; closed in the finally below
    app.state.runtime.telemetry.logs.set_stream(devnull)
    headers = [
        (b"host", b"gateway"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]

    async def one() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("gateway", 80),
        }
        delivered = False
        status = 0

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        for _ in range(300):
            if await one() != 200:
                raise RuntimeError("the in-process gateway did not answer 200")
        t0 = time.process_time()
        for _ in range(n):
            await one()
        return (time.process_time() - t0) / n * 1e6
    finally:
        await lifespan.__aexit__(None, None, None)
        devnull.close()
