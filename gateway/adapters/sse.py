"""Server-sent events: parse an upstream byte stream into ``data:`` payloads, and frame chunks for clients."""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class EventParser:
    """The payload of each ``data:`` field, event by event, from the bytes of a stream as they arrive. Comments and
    other fields are skipped; a plain object (no generator) so a chunk costs no frame of its own."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of every event ``chunk`` completes (none while an event is still incomplete)."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            return self._feed_crlf(buf)
        *events, self._buf = buf.split(b"\n\n")  # blank lines end events; the last piece is still incomplete
        out: list[bytes] = []
        for event in events:
            if event.startswith(b"data:") and b"\n" not in event:  # one line: the usual ``data: {...}``
                out.append(event[5:].lstrip(b" "))
            elif event:
                data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
                if data:
                    out.append(b"\n".join(data))
        return out

    def _feed_crlf(self, buf: bytes) -> list[bytes]:
        """:meth:`feed` for bytes that hold a carriage return: events end at ``\\n\\n`` or ``\\r\\n\\r\\n``."""
        out: list[bytes] = []
        while True:
            end = _event_end(buf)
            if end < 0:
                break
            event, buf = buf[:end], buf[end:].lstrip(b"\r\n")
            data = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
            if data:
                out.append(b"\n".join(data))
        self._buf = buf
        return out

    def tail(self) -> bytes | None:
        """The data of a last event the stream ended without terminating, if any."""
        tail = self._buf.strip()
        self._buf = b""
        return tail[5:].lstrip(b" ") if tail.startswith(b"data:") else None


def _event_end(buf: bytes) -> int:
    idx = buf.find(b"\n\n")
    alt = buf.find(b"\r\n\r\n")
    if idx < 0:
        return alt
    return idx if alt < 0 else min(idx, alt)
