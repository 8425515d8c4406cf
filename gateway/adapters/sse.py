"""Server-sent events: parse an upstream byte stream into ``data:`` payloads, and frame chunks for clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def iter_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield the payload of each ``data:`` field, event by event. Comments and other fields are skipped."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while True:
            end = _event_end(buf)
            if end < 0:
                break
            event, buf = buf[:end], buf[end:].lstrip(b"\r\n")
            data = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
            if data:
                yield b"\n".join(data)
    tail = buf.strip()
    if tail.startswith(b"data:"):
        yield tail[5:].lstrip(b" ")


def _event_end(buf: bytes) -> int:
    idx = buf.find(b"\n\n")
    alt = buf.find(b"\r\n\r\n")
    if idx < 0:
        return alt
    return idx if alt < 0 else min(idx, alt)
