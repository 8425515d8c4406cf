"""The metrics listener: ``GET /metrics`` on its own port, an asyncio server started and stopped by the app lifespan.

Deliberately tiny (HTTP/1.0-style, one request per connection): Prometheus is its only client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

_MAX_HEAD = 16 * 1024


class MetricsServer:
    def __init__(
        self, exposition: Callable[[], bytes], *, host: str = "127.0.0.1", port: int = 9090, reuse_port: bool = False
    ) -> None:
        """``reuse_port``: several worker processes bind the same port (multi-process mode, where any worker
        serves every worker's values)."""
        self._exposition = exposition
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests, after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; raises OSError when the port cannot be bound."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self._host, self._port, reuse_port=self._reuse_port or None
            )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10.0)
            method, _, rest = head[: head.find(b"\r\n")].decode("latin-1").partition(" ")
            target = rest.split(" ", 1)[0].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif target != "/metrics":
                status, ctype, body = "404 Not Found", "text/plain", b"not found; try /metrics\n"
            else:
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self._exposition()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
