"""A tiny OpenAI-compatible upstream (raw ASGI) that answers with the prompt it received and keeps the headers of
every request, for the end-to-end observability tests (privacy, trace propagation)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]


class EchoUpstream:
    """``gate``: when set to an unset :class:`asyncio.Event`, every answer waits for it (to hold requests open)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(
        self, scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        assert scope["type"] == "http"
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body", False):
                break
        req = orjson.loads(body)
        if self.gate is not None:
            await self.gate.wait()
        text = "echo: " + " ".join(str(m.get("content", "")) for m in req["messages"])
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        base = {"id": "chatcmpl-echo", "created": 1, "model": req["model"]}
        if not req.get("stream"):
            answer = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
            await _start(send, b"application/json")
            await send({"type": "http.response.body", "body": orjson.dumps(answer)})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": usage},
        ]
        await _start(send, b"text/event-stream")
        for e in events:
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(e) + b"\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _start(send: Callable[[Message], Awaitable[None]], ctype: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
