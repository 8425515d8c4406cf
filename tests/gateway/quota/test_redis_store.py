"""The Lua scripts against the state store (fakeredis, or real Redis when REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import hashlib
from importlib.resources import files
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT

from gateway.clock import FakeClock
from gateway.quota import mux
from gateway.quota.algorithm import DAY_MS, WINDOW_MS, LocalLimiter, day_index, ms_to_day_end
from gateway.quota.limiter import QuotaCounters, QuotaLimiter
from gateway.quota.redis_store import RedisLimiter
from gateway.rng import Rng
from gateway.settings.quota import Limits, QuotaSettings
from tests.gateway.quota.conftest import store_for

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_lua_matches_the_pure_core_step_for_step(state_store: aioredis.Redis, prefix: str, seed: int) -> None:
    """Any sequence of checks and settles gets the same answers from check.lua/settle.lua and LocalLimiter."""
    lease = 20_000
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=lease)
    await remote.load()
    local = LocalLimiter(lease)
    rng = Rng(seed).child("ops")
    limits = {
        "a": Limits(rpm=5, tpm=300, tpd=2000, max_concurrency=3),
        "b": Limits(rpm=8),
        "c": Limits(tpm=100, tpd=400),
    }
    now = (day_index(1_767_225_600_000) + 1) * DAY_MS - 90_000  # crosses a UTC midnight
    open_: list[tuple[str, str, int]] = []
    admitted = 0
    for step in range(400):
        now += rng.choice([0, 0, 3, 250, 1500, 9000, 21_000])
        if open_ and rng.random() < 0.4:
            consumer, handle, day = open_.pop(rng.randrange(len(open_)))
            actual = rng.randint(0, 120)
            settled = await remote.settle(consumer, handle, actual, day)
            assert settled == local.settle(consumer, handle, actual, day), step
            if rng.random() < 0.2:  # a repeated settle changes nothing
                assert await remote.settle(consumer, handle, actual, day) is None
                assert local.settle(consumer, handle, actual, day) is None
            continue
        consumer = rng.choice(["a", "b", "c"])
        tokens = rng.randint(1, 110)
        want = local.check(consumer, now, tokens, limits[consumer])
        got = await remote.check(consumer, now, tokens, limits[consumer])
        assert got == want, (step, consumer, tokens)
        if got.handle is not None:
            admitted += 1
            open_.append((consumer, got.handle, day_index(now)))
    assert admitted > 50


async def test_keys_are_prefixed_and_hash_tagged_with_hygiene_ttls(state_store: aioredis.Redis, prefix: str) -> None:
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=30_000)
    now = 1_767_225_600_000
    d = await remote.check("team-1", now, 10, Limits(rpm=10, tpm=100, tpd=1000, max_concurrency=5))
    assert d.admitted
    keys = sorted([k.decode() async for k in state_store.scan_iter(match=f"{prefix}:*")])
    tag = f"{prefix}:{{team-1}}"
    assert keys == sorted(f"{tag}:{s}" for s in ("rpm", "tpm", "tpmw", f"tpd:{day_index(now)}", "lease", "resv", "seq"))
    for k in keys:
        ttl = await state_store.pttl(k)
        assert 0 < ttl <= 2 * DAY_MS, k
    assert 0 < await state_store.pttl(f"{tag}:rpm") <= WINDOW_MS


async def test_the_entries_written_hold_the_arguments_as_the_gateway_sent_them(
    state_store: aioredis.Redis, prefix: str
) -> None:
    """check.lua passes now, tokens, window and lease on as the strings it received: the entries it writes are the
    same as when it passed them as numbers (scores, weights, counters)."""
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=30_000)
    now = 1_767_225_600_123
    d = await remote.check("team-1", now, 37, Limits(rpm=10, tpm=100, tpd=1000, max_concurrency=5))
    assert d.admitted and d.handle is not None
    tag = f"{prefix}:{{team-1}}"
    assert await state_store.zscore(f"{tag}:rpm", d.handle) == now
    assert await state_store.zscore(f"{tag}:tpm", d.handle) == now
    assert await state_store.zscore(f"{tag}:lease", d.handle) == now + 30_000
    assert await state_store.hmget(f"{tag}:tpmw", [d.handle, "_sum"]) == [b"37", b"37"]
    assert await state_store.hget(f"{tag}:resv", d.handle) == b"37"
    assert await state_store.get(f"{tag}:tpd:{day_index(now)}") == b"37"
    assert 0 < await state_store.pttl(f"{tag}:lease") <= 30_000


async def test_a_script_missing_from_the_server_cache_is_loaded_again(prefix: str) -> None:
    """After a server restart its script cache is empty; EVALSHA's NOSCRIPT makes the client load it again.
    (A private fakeredis whose cache is flushed: flushing a shared server's cache would disturb other users.)"""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    remote = RedisLimiter(client, prefix=prefix, lease_ms=30_000)
    await remote.load()
    assert await remote.check("a", 1_767_225_600_000, 1, Limits(rpm=2))  # the scripts are in use
    await client.script_flush()
    d = await remote.check("a", 1_767_225_600_001, 1, Limits(rpm=2))
    assert (d.admitted, d.req_used) == (True, 2)
    await remote.aclose()
    await client.aclose()


async def test_thousands_of_entries_expiring_at_once_after_a_lull(state_store: aioredis.Redis, prefix: str) -> None:
    """A burst of 9,000 requests, then a quiet minute: the next check expires them all in one script run (more
    values than Lua's unpack() takes at once) and answers normally."""
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=30_000)
    t0, n = 1_767_225_600_000, 9000
    handles = {f"h{i}": t0 + i // 100 for i in range(n)}
    weights: dict[EncodableT, EncodableT] = dict.fromkeys(handles, 2)
    async with state_store.pipeline(transaction=False) as pipe:
        pipe.zadd(remote.key("a", "tpm"), handles)
        pipe.hset(remote.key("a", "tpmw"), mapping={**weights, "_sum": 2 * n})
        pipe.zadd(remote.key("a", "lease"), {h: t0 + 2000 for h in handles})  # crashed holders' leases
        pipe.hset(remote.key("a", "resv"), mapping=weights)
        await pipe.execute()
    limits = Limits(tpm=2 * n, max_concurrency=1)
    full = await remote.check("a", t0 + 1000, 1, limits)
    assert (full.admitted, full.kind, full.tok_used) == (False, "concurrency", 2 * n)
    d = await remote.check("a", t0 + WINDOW_MS + 1000, 5, limits)
    assert (d.admitted, d.tok_used, d.inflight) == (True, 5, 1)
    assert await state_store.hlen(remote.key("a", "tpmw")) == 2  # "_sum" and the new handle
    assert await state_store.hlen(remote.key("a", "resv")) == 1


@pytest.mark.parametrize("burst_at_ms", [WINDOW_MS - 1, WINDOW_MS - 100])
async def test_no_double_burst_at_a_window_edge_on_the_store(
    state_store: aioredis.Redis, prefix: str, burst_at_ms: int
) -> None:
    """A full window's burst just before its edge, another just after: the script admits the limit, not twice it."""
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=600_000)
    t0, limits = 1_767_225_600_000, Limits(rpm=5, tpm=50)
    assert sum([(await remote.check("a", t0, 10, limits)).admitted for _ in range(10)]) == 5
    late = [(await remote.check("a", t0 + burst_at_ms, 10, limits)).admitted for _ in range(10)]
    edge = [(await remote.check("a", t0 + WINDOW_MS, 10, limits)).admitted for _ in range(10)]
    assert (sum(late), sum(edge)) == (0, 5)


async def test_a_check_and_a_settle_are_one_command_each_and_concurrent_ones_share_a_write(
    state_store: aioredis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path's check is a single EVALSHA (atomic); so is the settle after the call. Calls made in the same
    event-loop turn go out in one write; a release is written before it returns."""
    sent: list[list[str]] = []  # the commands of each write to the store

    def spy(writer: Any, commands: list[bytes]) -> None:
        sent.append([c.split(b"\r\n")[2].decode().upper() for c in commands])  # *N, $len, the command's name
        writer.writelines(commands)

    monkeypatch.setattr(mux, "write_commands", spy)
    events = QuotaCounters()
    store = store_for(state_store, events)
    lim = QuotaLimiter(store, QuotaSettings(key_prefix=prefix), clock=FakeClock(), events=events)
    await lim.start()
    assert sent == [["SCRIPT", "SCRIPT", "PING"]]  # the connection opens at start and loads both scripts first
    limits = Limits(rpm=10, tpm=1000, tpd=10_000, max_concurrency=8)
    try:
        decision, reservation = await lim.check("a", 10, limits)
        assert decision.admitted and reservation is not None
        assert sent[1:] == [["EVALSHA"]]
        await lim.settle(reservation, 7)
        assert sent[2:] == [["EVALSHA"]]
        burst = await asyncio.gather(*(lim.check("a", 10, limits) for _ in range(5)))
        assert all(d.admitted for d, _ in burst)
        assert sent[3:] == [["EVALSHA"] * 5]
        assert len({r.handle for _, r in burst if r is not None}) == 5
        released: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        lim.release(burst[0][1], 3, released.set_result)  # type: ignore[arg-type]  # admitted: has a reservation
        assert sent[4:] == [["EVALSHA"]]  # written already, before anything awaited
        assert await released == 3 - 10
    finally:
        await lim.stop()


async def test_retry_time_of_a_tokens_rejection_walks_a_long_log(state_store: aioredis.Redis, prefix: str) -> None:
    """The script reads the tokens log in pages of 64 entries; the answer matches the core's across pages."""
    remote, local = RedisLimiter(state_store, prefix=prefix, lease_ms=600_000), LocalLimiter(600_000)
    t0, limits = 1_767_225_600_000, Limits(tpm=200)
    for i in range(200):
        assert (await remote.check("a", t0 + i, 1, limits)).admitted
        assert local.check("a", t0 + i, 1, limits).admitted
    got, want = await remote.check("a", t0 + 500, 150, limits), local.check("a", t0 + 500, 150, limits)
    assert got == want
    assert (got.kind, got.retry_ms) == ("tokens", 149 + WINDOW_MS - 500)  # the 150th oldest entry must leave


async def test_the_calls_packed_ahead_of_time_are_the_commands_redis_py_would_send(
    state_store: aioredis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check and the settle keep their unchanging parts packed (per consumer, UTC day and limits): the bytes
    written are those redis-py packs for the same EVALSHA, across a change of limits and of UTC day."""
    sent: list[bytes] = []

    def spy(writer: Any, commands: list[bytes]) -> None:
        sent.extend(commands)
        writer.writelines(commands)

    monkeypatch.setattr(mux, "write_commands", spy)
    check_sha, settle_sha = (
        hashlib.sha1(files("gateway.quota").joinpath(n).read_text().encode()).hexdigest()
        for n in ("check.lua", "settle.lua")
    )
    packer = aioredis.Redis().connection_pool.make_connection()  # type: ignore[no-untyped-call]  # unannotated
    remote = RedisLimiter(state_store, prefix=prefix, lease_ms=30_000, timeout_s=5.0)
    tag = f"{prefix}:{{team-1}}"
    now = (day_index(1_767_225_600_000) + 1) * DAY_MS - 10  # 10 ms before a UTC midnight
    for step, limits in enumerate([Limits(rpm=10, tpm=100, tpd=1000), Limits(rpm=5, max_concurrency=2)] * 2):
        t, day = now + 5 * step, day_index(now + 5 * step)
        d = await remote.check("team-1", t, 7 + step, limits)
        assert d.admitted and d.handle is not None
        await remote.settle("team-1", d.handle, 3, day)
        keys = [f"{tag}:{s}" for s in ("rpm", "tpm", "tpmw", f"tpd:{day}", "lease", "resv", "seq")]
        lim = [limits.rpm or 0, limits.tpm or 0, limits.tpd or 0, limits.max_concurrency or 0]
        check = ("EVALSHA", check_sha, 7, *keys, t, 7 + step, *lim, WINDOW_MS, 30_000, ms_to_day_end(t))
        settle = ("EVALSHA", settle_sha, 4, keys[2], keys[3], keys[4], keys[5], d.handle, 3)
        assert sent[-2:] == [b"".join(packer.pack_commands([c])) for c in (check, settle)], step
    await remote.aclose()


class _RecordingCalls:
    """The ordered connection's stand-in: records each call's arguments and its packed bytes, answers nothing."""

    def __init__(self, *_: Any, **__: Any) -> None:
        self.calls: list[tuple[str, list[Any], list[Any], bytes | None]] = []

    def evalsha(self, sha: str, keys: Any, args: Any, *, wire: bytes | None = None) -> asyncio.Future[Any]:
        self.calls.append((sha, list(keys), list(args), wire))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(ConnectionError("recorded"))
        return future

    evalsha_now = evalsha


async def test_packed_calls_carry_the_same_argv_as_their_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check's and a settle's packed bytes and their ARGV say the same thing: a Redis Cluster client sends the
    ARGV again itself when the slot is unknown or the call is redirected (MOVED, ASK), so an empty or different
    ARGV there would run the scripts with other arguments than the packed call."""
    calls = _RecordingCalls()
    monkeypatch.setattr("gateway.quota.redis_store.script_calls", lambda *_, **__: calls)
    limiter = RedisLimiter(fakeredis.FakeAsyncRedis(), prefix="q", lease_ms=60_000)
    now = 1_767_225_600_000 + 12_345
    with pytest.raises(ConnectionError):
        await limiter.check("team", now, 10, Limits(rpm=5, tpm=300, tpd=2000, max_concurrency=3))
    with pytest.raises(ConnectionError):
        await limiter.settle("team", "h1", 7, day_index(now))
    answered: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    limiter.settle_soon("team", "h2", 9, day_index(now), lambda _, exc: answered.set_result(exc))
    assert isinstance(await answered, ConnectionError)
    assert [len(args) for _, _, args, _ in calls.calls] == [9, 2, 2]
    for sha, keys, args, wire in calls.calls:
        assert wire == mux.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
