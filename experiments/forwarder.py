"""The yardstick of ``make bench``: the thinnest Python forwarder that can stand in front of an OpenAI upstream.

A raw ASGI app served by uvicorn with httptools and uvloop (as the gateway is), one pooled aiohttp session to the
upstream (as the gateway's transport), and nothing else: no authentication, validation, quota, routing, metrics
or logs. ``POST /v1/chat/completions`` is sent on as it came (body and content type); a JSON answer is read whole
and returned, a stream is relayed chunk by chunk as the upstream sends it. What the gateway costs beyond this is
what its features cost.

``--framework fastapi`` serves the same forwarding from a FastAPI route instead (a ``Request`` read whole, a
``Response`` or a ``StreamingResponse``): the thinnest forwarder most Python services would write, and the one the
gateway was first measured against. The raw ASGI one is the platform's limit.

``python -m experiments.forwarder --upstream http://127.0.0.1:9101 --port 8300 [--framework fastapi]``
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Forwarder:
    """ASGI app: forwards every HTTP request's method, path, body and content type to ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self._session is not None
        async with self._session.request(
            scope["method"],
            self._upstream + scope["path"],
            data=body or None,
            headers={"content-type": "application/json"},
        ) as resp:
            media = resp.headers.get("content-type", "application/json")
            head = [(b"content-type", media.encode())]
            if media.startswith("text/event-stream"):
                await send({"type": "http.response.start", "status": resp.status, "headers": head})
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await resp.read()
            head.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": resp.status, "headers": head})
            await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=30)
                self._session = aiohttp.ClientSession(
                    connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def fastapi_forwarder(upstream: str) -> Any:
    """The same forwarding as :class:`Forwarder` as one FastAPI route, a session opened at startup."""
    base = upstream.rstrip("/")
    holder: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=30)
        holder["s"] = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )
        yield
        await holder["s"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        resp = await holder["s"].post(
            base + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        media = resp.headers.get("content-type", "application/json")
        if media.startswith("text/event-stream"):

            async def relay() -> Any:
                try:
                    async for chunk in resp.content.iter_any():
                        yield chunk
                finally:
                    resp.release()

            return StreamingResponse(relay(), status_code=resp.status, media_type=media)
        data = await resp.read()
        resp.release()
        return Response(data, status_code=resp.status, media_type=media)

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m experiments.forwarder")
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:9101")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--framework", choices=("asgi", "fastapi"), default="asgi")
    args = parser.parse_args(argv)
    app = Forwarder(args.upstream) if args.framework == "asgi" else fastapi_forwarder(args.upstream)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        proxy_headers=False,  # as the gateway runs
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
