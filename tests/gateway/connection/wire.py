"""Raw HTTP/1.1 on a loopback socket, for clients that misbehave on purpose: the bytes go out as given, the replies
are read with httptools' response parser. Every wait is bounded by :data:`BOUND_S`, a bound no working limit
comes near: a test that reaches it fails."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools
import orjson

BOUND_S = 15.0


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False

    def error(self) -> dict[str, object]:
        """The OpenAI-shaped error body, checked for its four keys."""
        err = orjson.loads(self.body)["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert self.headers["content-type"] == "application/json"
        return dict(err)


class _Parse:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def on_header(self, name: bytes, value: bytes) -> None:
        self.reply.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.reply.body += body

    def on_message_complete(self) -> None:
        self.reply.complete = True


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """One whole reply (its status, headers and body), read as it arrives."""
    reply = Reply()
    parser = httptools.HttpResponseParser(_Parse(reply))
    async with asyncio.timeout(BOUND_S):
        while not reply.complete:
            chunk = await reader.read(65536)
            if not chunk:
                raise AssertionError(f"closed before a whole reply: {reply}")
            parser.feed_data(chunk)
    reply.status = parser.get_status_code()
    return reply


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks: list[bytes] = []
    async with asyncio.timeout(BOUND_S):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> Reply:
    reply = Reply()
    parser = httptools.HttpResponseParser(_Parse(reply))
    parser.feed_data(raw)
    reply.status = parser.get_status_code()
    assert reply.complete, raw
    return reply


def get(path: str = "/v1/health", *extra: tuple[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: gw", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
