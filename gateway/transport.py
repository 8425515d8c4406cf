"""The upstream transport: the seam between adapters and the network.

* :class:`AiohttpTransport` — a pooled HTTP client for real upstreams. Chosen by measurement: the thinnest
  forwarder did 2,274 RPS at 32 connections with aiohttp against 419 with httpx on one core (docs/ARCHITECTURE.md).
* :class:`AsgiTransport` — calls ASGI apps (the simulators) in the same event loop, streaming chunk by chunk,
  with no sockets: the test and virtual-time seam. An exception the app raises before it starts its response is
  a :class:`ConnectFailed`; after it, a :class:`ConnectionLost`, as a dropped socket would be.

Transports know nothing of timeouts beyond connecting: adapters bound every wait with the injected loop's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp


class TransportError(Exception):
    """Base of the transport's own failures."""


class ConnectFailed(TransportError):
    """No response: refused, unreachable, reset before the status line."""


class ConnectionLost(TransportError):
    """The connection dropped after the response began."""


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]  # lower-case names

    async def read(self) -> bytes: ...

    def iter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float
    ) -> UpstreamResponse:
        """POST (or GET when ``body`` is empty) and return once the status line and headers arrived."""
        ...

    async def aclose(self) -> None: ...


# --- aiohttp -------------------------------------------------------------------------------------------------


class _AiohttpResponse:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers  # case-insensitive already

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc
        finally:
            self._resp.release()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._resp.close()


class AiohttpTransport:
    """Keep-alive connection pool; one per gateway process, created in the app's lifespan."""

    def __init__(self, *, pool_size: int = 512, pool_size_per_host: int = 256) -> None:
        self._limits = (pool_size, pool_size_per_host)
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=None)  # the last call's (frozen): reused while it applies

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits[0], limit_per_host=self._limits[1], keepalive_timeout=30, ttl_dns_cache=60
            )
            # No cookie jar: a cookie one upstream sets (a CDN's, say) on one consumer's call is not kept and sent
            # with every later call, whoever makes it. The bodies are read as they come (no decompression), so
            # the upstream is asked for none: aiohttp's own Accept-Encoding would offer gzip, deflate and br.
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                headers={"Accept-Encoding": "identity"},
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float
    ) -> UpstreamResponse:
        timeout = self._timeout
        if timeout.connect != connect_timeout:  # the configured connect_s, unless the deadline cut it
            timeout = self._timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, connect=connect_timeout
            )
        method = "POST" if body else "GET"
        try:
            resp = await self._get().request(method, url, data=body or None, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        except TimeoutError as exc:
            raise ConnectFailed(f"connect timed out after {connect_timeout}s") from exc
        return _AiohttpResponse(resp)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# --- in-process ASGI -----------------------------------------------------------------------------------------

_END = object()


class _AsgiResponse:
    def __init__(self, status: int, headers: dict[str, str], queue: asyncio.Queue[Any], task: asyncio.Task[None]):
        self.status = status
        self.headers: Mapping[str, str] = headers
        self._queue = queue
        self._task = task

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise ConnectionLost(f"{type(item).__name__}: {item}") from item
            if item:
                yield item

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _scope(path: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The ASGI scope of one request to ``path`` (with its query string)."""
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if body else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 0),
        "server": ("in-process", 80),
    }


class _Exchange:
    """One request's ASGI exchange with an in-process app, in the order the app sends: ``started`` resolves with
    the response start (or fails before it), then ``queue`` carries the body chunks, a failure after the start,
    and the end."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self._disconnected = asyncio.Event()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.started: asyncio.Future[tuple[int, dict[str, str]]] = asyncio.get_running_loop().create_future()

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            hdrs = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            if not self.started.done():
                self.started.set_result((message["status"], hdrs))
        elif message["type"] == "http.response.body":
            self.queue.put_nowait(message.get("body", b""))
            if not message.get("more_body", False):
                self.queue.put_nowait(_END)

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._disconnected.set()
            raise
        except Exception as exc:
            if not self.started.done():
                self.started.set_exception(ConnectFailed(f"{type(exc).__name__}: {exc}"))
            else:
                self.queue.put_nowait(exc)
        else:
            self.queue.put_nowait(_END)
            if not self.started.done():
                self.started.set_exception(ConnectFailed("the app returned without a response"))


class AsgiTransport:
    """Route requests by URL prefix to ASGI apps running in this event loop."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self._apps = sorted(apps.items(), key=lambda kv: -len(kv[0]))
        self._tasks: set[asyncio.Task[None]] = set()

    def _route(self, url: str) -> tuple[Any, str]:
        for prefix, app in self._apps:
            if url.startswith(prefix):
                return app, url[len(prefix.rstrip("/")) :] or "/"
        raise ConnectFailed(f"no in-process app serves {url}")

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float
    ) -> UpstreamResponse:
        app, path = self._route(url)
        exchange = _Exchange(body)
        task = asyncio.get_running_loop().create_task(exchange.run(app, _scope(path, headers, body)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            status, hdrs = await exchange.started
        except BaseException:
            if not task.done():
                task.cancel()
            raise
        return _AsgiResponse(status, hdrs, exchange.queue, task)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
