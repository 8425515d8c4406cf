"""Quotas through the whole gateway (raw ASGI in, a counting upstream out), on fakeredis or real Redis.

Every rejection is answered before any provider is called: the upstream's request count proves it. Streams are
charged what was delivered when the upstream cuts them or the client goes away.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import Settings, hash_key, parse_settings
from gateway.transport import AsgiTransport

pytestmark = pytest.mark.redis

KEYS = {name: f"fl-test-{name}" for name in ("plain", "gold", "own", "capped")}
MSG = [{"role": "user", "content": "x" * 40}]  # estimate: 3 + 4 + 10 = 17 prompt tokens
PROMPT_EST = 17
USAGE = {"prompt_tokens": 15, "completion_tokens": 4, "total_tokens": 19}


class Upstream:
    """An OpenAI-like upstream that counts calls. JSON: 4 tokens and ``USAGE``. Stream: ``chunks`` one-token
    content chunks, then ``end``: "usage" (usage chunk + [DONE]), "eof" (the body just ends), "reset" (the
    connection drops), or "hold" (waits for ``release``, e.g. for the client to go away)."""

    def __init__(self, chunks: int = 3, end: str = "usage") -> None:
        self.calls = 0
        self.chunks, self.end = chunks, end
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.gate: asyncio.Event | None = None  # when set, every call waits for it before answering

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        payload = orjson.loads(body)
        if not payload.get("stream"):
            answer = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": payload["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "a b c d"}, "finish_reason": "stop"}
                ],
                "usage": USAGE,
            }
            hdrs = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": hdrs})
            await send({"type": "http.response.body", "body": orjson.dumps(answer)})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for _ in range(self.chunks):
            await send({"type": "http.response.body", "body": _sse(content="x"), "more_body": True})
        if self.end == "hold":
            await self.release.wait()
        if self.end == "reset":
            raise ConnectionResetError("the upstream dropped the connection mid-stream")
        if self.end == "usage":
            usage = {"prompt_tokens": 15, "completion_tokens": self.chunks, "total_tokens": 15 + self.chunks}
            await send({"type": "http.response.body", "body": _sse(usage=usage), "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _sse(*, content: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
    }
    if usage:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def settings(prefix: str, *, quota: dict[str, Any] | None = None, **consumer_limits: dict[str, int]) -> Settings:
    """Consumers: ``plain`` (no tier, no limits: the default tier), ``gold`` (tier gold), ``own`` (tier gold and
    its own limits), ``capped`` (its own limits from ``consumer_limits["capped"]``)."""
    return parse_settings(
        {
            "tiers": {"default": {"rpm": 1}, "gold": {"rpm": 3}},
            "consumers": [
                {"name": "plain", "key_sha256": hash_key(KEYS["plain"])},
                {"name": "gold", "key_sha256": hash_key(KEYS["gold"]), "tier": "gold"},
                {"name": "own", "key_sha256": hash_key(KEYS["own"]), "tier": "gold", "limits": {"rpm": 2}},
                {"name": "capped", "key_sha256": hash_key(KEYS["capped"]), "limits": consumer_limits.get("capped")},
            ],
            "providers": [{"name": "p", "kind": "openai", "base_url": "http://up/v1"}],
            "models": [{"name": "m", "routes": [{"provider": "p", "model": "m"}]}],
            "quota": {"key_prefix": prefix} | (quota or {}),
            "server": {"metrics_port": 0},
        }
    )


@pytest.fixture
async def gateway() -> AsyncIterator[Any]:
    """``app = await gateway(settings, upstream, state)``: a started gateway app, stopped at the end."""
    stack: list[Any] = []

    async def build(s: Settings, upstream: Upstream, state: Any) -> Any:
        app = create_app(s, clock=SystemClock(), state=state, upstream_transport=AsgiTransport({"http://up": upstream}))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        return app

    yield build
    for lifespan in reversed(stack):
        await lifespan.__aexit__(None, None, None)


async def post(app: Any, consumer: str, **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        return await client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {KEYS[consumer]}"},
            json={"model": "m", "messages": MSG, **body},
        )


async def test_default_tier_named_tier_and_own_limits(gateway: Any, state_store: aioredis.Redis, prefix: str) -> None:
    up = Upstream()
    app = await gateway(settings(prefix), up, state_store)
    seen = {}
    for consumer in ("plain", "gold", "own"):
        r = await post(app, consumer, max_tokens=5)
        assert r.status_code == 200, r.text
        seen[consumer] = r.headers["x-ratelimit-limit-requests"]
    assert seen == {"plain": "1", "gold": "3", "own": "2"}  # default tier / named tier / own limits win
    assert (await post(app, "plain", max_tokens=5)).status_code == 429
    assert (await post(app, "own", max_tokens=5)).status_code == 200
    assert (await post(app, "own", max_tokens=5)).status_code == 429
    assert up.calls == 4


@pytest.mark.parametrize(
    ("limits", "admitted", "status", "code", "type_"),
    [
        ({"rpm": 1}, 1, 429, "rate_limit_exceeded", "requests"),
        ({"tpm": 40}, 1, 429, "rate_limit_exceeded", "tokens"),  # 19 charged + 17 + 20 reserved > 40
        ({"tpm": 30}, 0, 429, "rate_limit_exceeded", "tokens"),  # 37 reserved: larger than the limit itself
        ({"tpd": 50}, 1, 403, "insufficient_quota", "insufficient_quota"),  # 19 charged + 37 > 50
    ],
)
async def test_a_rejection_never_reaches_the_upstream(
    gateway: Any,
    state_store: aioredis.Redis,
    prefix: str,
    limits: dict[str, int],
    admitted: int,
    status: int,
    code: str,
    type_: str,
) -> None:
    up = Upstream()
    app = await gateway(settings(prefix, capped=limits), up, state_store)
    answers = [await post(app, "capped", max_tokens=20) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * admitted + [status] * (3 - admitted)
    assert up.calls == admitted
    error = answers[-1].json()["error"]
    assert (error["code"], error["type"]) == (code, type_)


async def test_concurrency_limit_rejects_while_a_request_is_in_flight(
    gateway: Any, state_store: aioredis.Redis, prefix: str
) -> None:
    up = Upstream()
    up.gate = asyncio.Event()
    app = await gateway(settings(prefix, capped={"max_concurrency": 1}), up, state_store)
    first = asyncio.create_task(post(app, "capped", max_tokens=5))
    await up.entered.wait()
    second = await post(app, "capped", max_tokens=5)
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "concurrency"
    assert int(second.headers["retry-after"]) >= 1
    assert up.calls == 1
    up.gate.set()
    assert (await first).status_code == 200
    assert (await post(app, "capped", max_tokens=5)).status_code == 200  # the lease was released


async def test_fail_closed_answers_503_without_calling_the_upstream(gateway: Any, prefix: str) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    up = Upstream()
    try:
        app = await gateway(settings(prefix, capped={"rpm": 5}, quota={"failure_policy": "closed"}), up, dead)
        r = await post(app, "capped", max_tokens=5)
    finally:
        await dead.aclose()
    assert r.status_code == 503
    assert (r.json()["error"]["type"], r.json()["error"]["code"]) == ("server_error", "service_unavailable")
    assert r.headers["retry-after"] == "1"
    assert up.calls == 0


async def remaining_tokens(app: Any) -> int:
    """The TPM left, read from a 1-token request's headers (which reserves 17 + 1)."""
    r = await post(app, "capped", max_tokens=1)
    assert r.status_code == 200, r.text
    return int(r.headers["x-ratelimit-remaining-tokens"]) + PROMPT_EST + 1


@pytest.mark.parametrize(("end", "charged"), [("usage", 15 + 5), ("eof", PROMPT_EST + 5), ("reset", PROMPT_EST + 5)])
async def test_a_stream_is_charged_its_usage_or_what_was_delivered(
    gateway: Any, state_store: aioredis.Redis, prefix: str, end: str, charged: int
) -> None:
    up = Upstream(chunks=5, end=end)
    app = await gateway(settings(prefix, capped={"tpm": 10_000}), up, state_store)
    r = await post(app, "capped", max_tokens=200, stream=True)
    assert r.status_code == 200
    assert r.text.count('"content"') == 5
    assert ('data: {"error"' in r.text) == (end != "usage")  # a cut after bytes reached the client says so
    assert r.headers["x-ratelimit-limit-tokens"] == "10000"  # the headers come with streams too
    assert r.headers["x-ratelimit-remaining-tokens"] == str(10_000 - PROMPT_EST - 200)
    assert await remaining_tokens(app) == 10_000 - charged


async def test_a_client_gone_mid_stream_is_charged_what_was_sent(
    gateway: Any, state_store: aioredis.Redis, prefix: str
) -> None:
    """The client disconnects after the second content chunk; the upstream is still holding the stream open."""
    up = Upstream(chunks=3, end="hold")
    app = await gateway(settings(prefix, capped={"tpm": 10_000, "max_concurrency": 1}), up, state_store)
    body = orjson.dumps({"model": "m", "messages": MSG, "max_tokens": 200, "stream": True})
    sent: list[bytes] = []
    gone = asyncio.Event()
    receive = receiver(body, gone)

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and b'"content"' in message.get("body", b""):
            sent.append(message["body"])
            if len(sent) == 2:
                gone.set()

    await app(stream_scope(), receive, send)
    up.release.set()
    delivered = len(sent)
    assert delivered >= 2
    # the prompt estimate (no usage came) + the chunks handed to the client; the concurrency lease is free again
    assert await remaining_tokens(app) == 10_000 - (PROMPT_EST + delivered)


async def test_a_stream_whose_head_cannot_be_sent_releases_everything(
    gateway: Any, state_store: aioredis.Redis, prefix: str
) -> None:
    """The client is gone before the response starts (a server on ASGI 2.4 raises from ``send``): the stream is
    never read, yet the router's slots, the quota lease and the request's log line are all released or written."""
    up = Upstream(chunks=3)
    app = await gateway(settings(prefix, capped={"max_concurrency": 1}), up, state_store)
    body = orjson.dumps({"model": "m", "messages": MSG, "max_tokens": 5, "stream": True})
    lines = io.StringIO()
    rt = app.state.runtime
    rt.telemetry.logs.set_stream(lines)
    receive = receiver(body, asyncio.Event())

    async def send(message: MutableMapping[str, Any]) -> None:
        raise OSError("the client is gone")

    with pytest.raises(OSError):
        await app(stream_scope(), receive, send)
    assert (rt.router.shedder.in_flight, rt.router.shedder.in_flight_at("p")) == (0, 0)
    rt.telemetry.logs.flush()  # the lines of the current tick, not written yet
    (line,) = [orjson.loads(x) for x in lines.getvalue().splitlines() if '"event":"request"' in x]
    assert line["outcome"] == "cancelled"
    assert (await post(app, "capped", max_tokens=5)).status_code == 200  # the concurrency lease is free


def receiver(body: bytes, gone: asyncio.Event) -> Any:
    """An ASGI ``receive``: the request body, then a disconnect once ``gone`` is set."""
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


def stream_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {KEYS['capped']}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("gw", 80),
    }
