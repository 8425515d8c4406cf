"""The calls of this process share one connection in the order they were issued; errors reach exactly the calls
they belong to; a store that stops answering or goes away fails what was in flight, and the next call connects
again."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from gateway.quota.mux import ScriptMux, pack_commands
from tests.gateway.quota.conftest import SwitchedState

INCR = "return redis.call('incrby', KEYS[1], ARGV[1])"

pytestmark = pytest.mark.redis


async def test_calls_run_in_the_order_they_were_issued(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    mux = ScriptMux(state_store, timeout_s=5.0)
    key = f"{prefix}:n"
    results = await asyncio.gather(*(mux.evalsha(sha, [key], [i]) for i in (1, 2, 3)))
    assert list(results) == [1, 3, 6]  # applied in the order they were issued
    queued = mux.evalsha(sha, [key], [10])  # written at the end of this turn
    now = mux.evalsha_now(sha, [key], [100])  # written at once, behind the one queued before it
    assert list(await asyncio.gather(queued, now)) == [16, 116]
    await mux.aclose()


async def test_an_error_reply_fails_only_its_call(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    mux = ScriptMux(state_store, timeout_s=5.0)
    key = f"{prefix}:n"
    outcomes: tuple[Any, Any, Any] = await asyncio.gather(
        mux.evalsha(sha, [key], [5]),
        mux.evalsha("0" * 40, [key], [1]),
        mux.evalsha(sha, [key], [1]),
        return_exceptions=True,
    )
    ok, missing, after = outcomes
    assert (ok, after) == (5, 6)
    assert isinstance(missing, NoScriptError)
    await mux.aclose()


async def test_a_caller_that_stopped_waiting_is_skipped(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    mux = ScriptMux(state_store, timeout_s=5.0)
    key = f"{prefix}:n"
    gone = mux.evalsha(sha, [key], [1])
    kept = mux.evalsha(sha, [key], [2])
    gone.cancel()  # its caller's timeout fired before the answer came
    assert await kept == 3  # the command was sent all the same, as a lone command that timed out may have been
    assert gone.cancelled()
    await mux.aclose()


class _Silent:
    """A TCP server that accepts connections, reads everything and never answers (a hung store)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    async def __aenter__(self) -> _Silent:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                while await reader.read(65536):
                    pass
            writer.close()

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


async def test_a_store_that_stops_answering_fails_the_calls_in_flight_at_the_timeout_and_is_dropped() -> None:
    async with _Silent() as silent:
        client = aioredis.Redis(host="127.0.0.1", port=silent.port)
        mux = ScriptMux(client, timeout_s=0.05)  # the loop's own timer (this test runs in real time: 50 ms)
        calls = [mux.evalsha("a" * 40, ["k"], [1]) for _ in range(2)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(r) for r in results] == [TimeoutError, TimeoutError]
        later = mux.evalsha("a" * 40, ["k"], [1])  # a new connection
        assert isinstance((await asyncio.gather(later, return_exceptions=True))[0], TimeoutError)
        assert silent.connections == 2
        await mux.aclose()
        await client.aclose()


async def test_a_store_that_cannot_be_reached_fails_the_call_and_the_next_one_tries_again() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    client = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    mux = ScriptMux(client, timeout_s=5.0)
    for _ in range(2):
        with pytest.raises(RedisConnectionError):
            await mux.evalsha("a" * 40, ["k"], [1])
    await mux.aclose()


async def test_a_connection_lost_fails_what_was_in_flight_and_the_next_call_reconnects(
    state_store: aioredis.Redis, prefix: str
) -> None:
    sha = await state_store.script_load(INCR)
    state = SwitchedState(state_store)
    mux = ScriptMux(state, timeout_s=5.0)
    key = f"{prefix}:n"
    assert await mux.evalsha(sha, [key], [1]) == 1
    blocked = mux.evalsha_now(sha, [key], [1])  # written at once
    state.dead = True  # the connection is lost before its answer is read
    with pytest.raises(RedisConnectionError):
        await blocked
    await state.revive()
    assert await mux.evalsha(sha, [key], [1]) in (2, 3)  # the lost command may or may not have run
    await mux.aclose()


async def _killed_and_back(url: str) -> list[Any]:
    """Calls on the ordered connection, that connection closed by the server (CLIENT KILL), calls again."""
    name = f"mux-{secrets.token_hex(4)}"
    client = aioredis.Redis.from_url(url, client_name=name)
    admin = aioredis.Redis.from_url(url)
    mux = ScriptMux(client, timeout_s=5.0)
    try:
        for _ in range(200):  # a private redis-server may still be starting
            with contextlib.suppress(RedisConnectionError):
                await admin.ping()
                break
            await asyncio.sleep(0.02)
        sha = await admin.script_load("return ARGV[1]")
        seen = list(await asyncio.gather(*(mux.evalsha(sha, [], [i]) for i in range(3))))
        ours = [c["id"] for c in await admin.client_list() if c["name"] == name]
        assert len(ours) == 1
        await admin.client_kill_filter(_id=ours[0])
        for _ in range(3):  # the call written before the end of the connection was read fails; the next reconnects
            try:
                seen.append(await mux.evalsha(sha, [], ["back"]))
                break
            except RedisConnectionError:
                seen.append("lost")
        return seen
    finally:
        await mux.aclose()
        await client.aclose()
        await admin.aclose()


@pytest.mark.processes
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_replies_read_by_the_connection_s_own_protocol_and_a_closed_connection_is_dropped(
    redis_server_url: str, loop: str
) -> None:
    """The replies are read by the ordered connection's own protocol on both event loops; when the server closes
    the connection, the calls on it fail at once (not at their timeout) and the next call connects again."""
    run = uvloop.run if loop == "uvloop" else asyncio.run
    seen = run(_killed_and_back(redis_server_url))
    assert seen[:3] == [b"0", b"1", b"2"]
    assert seen[3:] in (["lost", b"back"], [b"back"])


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    conn = aioredis.Redis().connection_pool.make_connection()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    commands = [("EVALSHA", "a" * 40, 2, "p:{c}:rpm", b"raw", 1_796_313_715_191, -3, 0), ("PING",)]
    assert pack_commands(commands) == [b"".join(conn.pack_commands([c])) for c in commands]
