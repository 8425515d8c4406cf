"""The aiohttp transport against a real loopback upstream: what it asks of the upstream and what it keeps.

An upstream's ``Set-Cookie`` on one call is not sent back on the next (a shared jar would hand one consumer's
cookie to every later call), and the upstream is asked for no content coding, since the bodies are read as they
come."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.transport import AiohttpTransport


async def test_no_cookie_is_kept_and_no_coding_is_asked_for() -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Cookie"), request.headers.get("Accept-Encoding")))
        resp = web.json_response({"n": len(seen)})
        resp.set_cookie("__cf_bm", "one-consumer", path="/")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    transport = AiohttpTransport()
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/v1/chat/completions"))
        try:
            for _ in range(2):
                resp = await transport.send(url, {"content-type": "application/json"}, b"{}", connect_timeout=5.0)
                assert resp.status == 200
                assert await resp.read() == b'{"n": %d}' % len(seen)
        finally:
            await transport.aclose()
    assert seen == [(None, "identity"), (None, "identity")]
