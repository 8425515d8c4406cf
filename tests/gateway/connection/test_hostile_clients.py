"""Hostile clients against a real gateway process (``python -m gateway`` on a loopback port, small limits): slow
heads and bodies are cut and answered 408 while other clients are served; too many or too large header fields get
a 431; a connection over the cap gets a 503 while the others are served; a kept-alive connection ends after its
last allowed request; what the server does not understand gets an OpenAI-shaped 400. Every limit shows in
``faultline_client_connections_closed_total``.

Bounded: each wait ends by :data:`wire.BOUND_S` (a test that reaches it fails), a slow client sends at most one byte
per 50 ms, and the processes are always stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import hash_key
from tests.processes import free_port, stop, wait_http

from . import wire

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-hostile-clients"
LIMITS = {
    "header_timeout_s": 0.5,
    "body_timeout_s": 0.5,
    "keep_alive_timeout_s": 30,
    "max_requests_per_connection": 3,
    "max_header_count": 20,
    "max_header_bytes": 4096,
    "max_connections": 64,
}


@dataclass(frozen=True)
class Gateway:
    port: int
    metrics_port: int

    async def closed(self) -> dict[str, float]:
        """faultline_client_connections_closed_total by reason, scraped from the metrics port."""
        async with httpx.AsyncClient(timeout=wire.BOUND_S) as c:
            text = (await c.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        return {
            s.labels["reason"]: s.value
            for family in text_string_to_metric_families(text)
            if family.name == "faultline_client_connections_closed"
            for s in family.samples
            if s.name.endswith("_total")
        }


def start(tmp_path: Path, limits: dict[str, Any]) -> tuple[Gateway, subprocess.Popen[bytes]]:
    """A gateway process with these ``server.limits`` (its upstream is never called); wait for it with
    :func:`wait_http`."""
    gw = Gateway(free_port(), free_port())
    config = {
        "seed": 5,
        "server": {"host": "127.0.0.1", "port": gw.port, "metrics_port": gw.metrics_port, "limits": limits},
        "consumers": [{"name": "c", "key_sha256": hash_key(KEY)}],
        "providers": [{"name": "p", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}],
        "models": [{"name": "m", "routes": [{"provider": "p", "model": "m"}]}],
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "FAULTLINE_REQUEST_LOG")}
    env["PYTHONPATH"] = str(ROOT)
    return gw, subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(cfg)], cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw, proc = start(tmp_path_factory.mktemp("hostile"), LIMITS)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{gw.port}/v1/health"))
        yield gw
    finally:
        stop([proc])


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway that holds at most four connections."""
    gw, proc = start(tmp_path, {**LIMITS, "max_connections": 4, "max_requests_per_connection": 100})
    try:
        await wait_http(f"http://127.0.0.1:{gw.port}/v1/health")
        yield gw
    finally:
        stop([proc])


async def slowloris(port: int, prefix: bytes) -> bytes:
    """Send ``prefix``, then a header one byte per 50 ms until the server answers or closes; return its bytes."""
    reader, writer = await wire.connect(port)
    answer = asyncio.ensure_future(wire.until_closed(reader))
    try:
        writer.write(prefix)
        async with asyncio.timeout(wire.BOUND_S):
            for i in range(10**6):
                await asyncio.wait([answer], timeout=0.05)
                if answer.done():
                    break
                writer.write(b"x-slow: a\r\n"[i % 11 : i % 11 + 1])
        return await answer
    finally:
        writer.close()


async def test_slow_heads_are_cut_with_a_408_while_other_clients_are_served(gateway: Gateway) -> None:
    before = await gateway.closed()
    slow = [
        asyncio.ensure_future(slowloris(gateway.port, b"GET /v1/health HTTP/1.1\r\nHost: gw\r\n")) for _ in range(4)
    ]
    silent_reader, silent = await wire.connect(gateway.port)  # connects and never sends a byte
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=wire.BOUND_S) as c:
        served = await c.get("/v1/health")
    answers = await asyncio.gather(*slow)
    nothing = await wire.until_closed(silent_reader)
    silent.close()

    assert served.status_code == 200
    for raw in answers:
        reply = wire.parse(raw)
        assert reply.status == 408
        assert reply.headers["connection"] == "close"
        assert reply.error()["code"] == "request_timeout"
    assert nothing == b""  # no head began: closed without a word
    after = await gateway.closed()
    assert after["header_timeout"] - before.get("header_timeout", 0) >= 5


async def test_a_request_body_that_stalls_is_cut_with_a_408(gateway: Gateway) -> None:
    reader, writer = await wire.connect(gateway.port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: 200\r\n\r\n"
    )
    writer.write(head.encode() + b'{"model": "m", ')  # then nothing more
    raw = await wire.until_closed(reader)
    writer.close()
    reply = wire.parse(raw)
    assert reply.status == 408
    assert reply.error()["code"] == "request_timeout"
    assert "body" in str(reply.error()["message"])


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(wire.get("/v1/health", *((f"x-h{i}", "v") for i in range(50))), id="50 header fields"),
        pytest.param(wire.get("/v1/health", ("x-big", "a" * 1_048_576)), id="one 1 MiB header"),
        pytest.param(wire.get("/v1/health?" + "q" * 8000), id="an 8 kB request target"),
    ],
)
async def test_too_many_or_too_large_header_fields_get_a_431(gateway: Gateway, request_bytes: bytes) -> None:
    before = await gateway.closed()
    reader, writer = await wire.connect(gateway.port)
    answer = asyncio.ensure_future(wire.until_closed(reader))
    writer.write(request_bytes)
    with contextlib.suppress(ConnectionError):  # the server stops reading once it has answered
        await writer.drain()
    raw = await answer
    writer.close()
    reply = wire.parse(raw)
    assert reply.status == 431
    assert reply.headers["connection"] == "close"
    err = reply.error()
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error",
        "request_header_fields_too_large",
        None,
    )
    after = await gateway.closed()
    assert after["header_fields_too_large"] - before.get("header_fields_too_large", 0) == 1


async def test_a_head_at_the_field_limit_is_served_and_one_field_more_is_refused(gateway: Gateway) -> None:
    fields = [(f"x-h{i}", "v" * 100) for i in range(19)]  # with Host: 20 fields, about 2 kB
    statuses = []
    for extra in ([], [("x-one-more", "v")]):
        reader, writer = await wire.connect(gateway.port)
        writer.write(wire.get("/v1/health", *fields, *extra))
        statuses.append((await wire.read_reply(reader)).status)
        writer.close()
    assert statuses == [200, 431]


async def test_the_last_request_a_connection_may_carry_is_answered_with_connection_close(gateway: Gateway) -> None:
    reader, writer = await wire.connect(gateway.port)
    replies = []
    for _ in range(3):
        writer.write(wire.get())
        replies.append(await wire.read_reply(reader))
    rest = await wire.until_closed(reader)
    writer.close()
    assert [r.status for r in replies] == [200, 200, 200]
    assert [r.headers.get("connection") for r in replies] == [None, None, "close"]
    assert rest == b""


async def test_what_is_not_http_gets_an_openai_shaped_400(gateway: Gateway) -> None:
    reader, writer = await wire.connect(gateway.port)
    writer.write(b"HELLO THERE\r\n\r\n")
    raw = await wire.until_closed(reader)
    writer.close()
    reply = wire.parse(raw)
    assert reply.status == 400
    assert reply.error()["code"] == "invalid_http_request"


async def _hold(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A kept-alive connection that was served once, or None when the server refused it (over the cap)."""
    reader, writer = await wire.connect(port)
    writer.write(wire.get())
    if (await wire.read_reply(reader)).status == 200:
        return reader, writer
    writer.close()
    return None


async def test_a_connection_over_the_cap_gets_a_503_while_the_others_are_served(capped: Gateway) -> None:
    gw = capped
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(50):  # the readiness probe's connection may still be open for a moment
        conn = await _hold(gw.port)
        if conn is not None:
            held.append(conn)
        if len(held) == 4:
            break
    assert len(held) == 4

    reader, writer = await wire.connect(gw.port)
    writer.write(wire.get())
    raw = await wire.until_closed(reader)
    writer.close()
    refused = wire.parse(raw)
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["connection"] == "close"
    assert (refused.error()["type"], refused.error()["code"]) == ("server_error", "server_overloaded")

    for r, w in held:  # the connections under the cap are still served
        w.write(wire.get())
        assert (await wire.read_reply(r)).status == 200
    held.pop()[1].close()
    again = None
    for _ in range(50):  # once the server has seen that close, a new connection is served again
        again = await _hold(gw.port)
        if again is not None:
            break
    assert again is not None
    again[1].close()
    for _, w in held:
        w.close()
    assert (await gw.closed())["over_capacity"] >= 1


async def test_an_upgrade_request_is_served_as_plain_http(gateway: Gateway) -> None:
    """No WebSocket route, so no WebSocket protocol (whose connections these limits would not cover)."""
    reader, writer = await wire.connect(gateway.port)
    upgrade = (("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"))
    writer.write(wire.get("/v1/health", *upgrade, ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")))
    reply = await wire.read_reply(reader)
    writer.close()
    assert reply.status == 200 and "upgrade" not in reply.headers
