"""The shared limiter on Redis: one EVALSHA per check, one per settle (scripts in gateway/quota/*.lua), all on
one connection in the order they are issued (gateway/quota/mux.py): a check goes out with the other calls of its
event-loop turn; a settle can be written at once and its answer left to arrive (:meth:`RedisLimiter.settle_soon`).

Keys carry a configurable prefix and the consumer as a Redis Cluster hash tag, so all of one consumer's keys live
in one slot: ``<prefix>:{<consumer>}:rpm``, ``:tpm``, ``:tpmw``, ``:tpd:<UTC day number>``, ``:lease``,
``:resv``, ``:seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from importlib.resources import files
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from gateway.quota.algorithm import DAY_MS, WINDOW_MS, Decision, from_wire, ms_to_day_end
from gateway.quota.clustercalls import script_calls
from gateway.quota.mux import bulk_strings
from gateway.settings.quota import Limits
from gateway.store.client import Script, StateClient
from gateway.store.statestore import StateStore


def _lua(name: str) -> str:
    return files("gateway.quota").joinpath(name).read_text()


Settled = Callable[[int | None, BaseException | None], None]  # a settle's answer: (delta applied or None, error)


class RedisLimiter:
    """Same contract as :class:`gateway.quota.algorithm.LocalLimiter`, shared by every replica."""

    def __init__(
        self,
        redis: StateClient,
        *,
        prefix: str,
        lease_ms: int,
        store: StateStore | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """``store``: every call bounded by the state store's one bound and counted for its health (the gateway);
        without it, a plain ``timeout_s`` (tests)."""
        self._redis = redis
        self._store = store
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._texts = (_lua("check.lua"), _lua("settle.lua"))
        self._check, self._settle = (redis.register_script(text) for text in self._texts)
        self._mux = script_calls(redis, timeout_s=timeout_s, scripts=self._texts, store=store)
        self._wires: dict[str, _Wires] = {}  # consumer -> its calls' unchanging parts, packed (one per consumer)

    def key(self, consumer: str, suffix: str) -> str:
        return f"{self._prefix}:{{{consumer}}}:{suffix}"

    async def load(self) -> None:
        """Load both scripts and open the connection now (at start), so the first request pays for neither."""
        self._check.sha = await self._redis.script_load(self._texts[0])
        self._settle.sha = await self._redis.script_load(self._texts[1])
        await self._mux.ping()

    def _wires_for(self, consumer: str, day: int, limits: Limits | None) -> _Wires:
        """The consumer's keys and its calls' unchanging parts, packed once per consumer, UTC day and limits."""
        hit = self._wires.get(consumer)
        if hit is not None and hit.day == day and (limits is None or hit.limits is limits or hit.limits == limits):
            return hit
        k = self.key
        check_keys = [k(consumer, s) for s in ("rpm", "tpm", "tpmw", f"tpd:{day}", "lease", "resv", "seq")]
        settle_keys = [k(consumer, "tpmw"), k(consumer, f"tpd:{day}"), k(consumer, "lease"), k(consumer, "resv")]
        limits = limits if limits is not None else (hit.limits if hit is not None else Limits())
        wires = _Wires(
            day,
            limits,
            check_keys,
            settle_keys,
            b"*19\r\n" + bulk_strings(("EVALSHA", self._check.sha, 7, *check_keys)),
            bulk_strings(_check_args(0, 0, limits, self._lease_ms, 0)[2:8]),
            b"*9\r\n" + bulk_strings(("EVALSHA", self._settle.sha, 4, *settle_keys)),
            tuple(_check_args(0, 0, limits, self._lease_ms, 0)[2:8]),
        )
        self._wires[consumer] = wires
        return wires

    async def check(self, consumer: str, now_ms: int, tokens: int, limits: Limits) -> Decision:
        day = now_ms // DAY_MS  # algorithm.day_index, inline: the check's arguments cost a few calls fewer
        w = self._wires_for(consumer, day, limits)
        day_left = (day + 1) * DAY_MS - now_ms  # algorithm.ms_to_day_end
        n, t, e = str(now_ms), str(tokens), str(day_left)
        # the ARGV goes with the packed call: a cluster client sends it again itself (a redirect, an unknown slot)
        args = [now_ms, tokens, *w.check_argv, day_left]  # _check_args
        wire = b"".join(
            (
                w.check_head,
                f"${len(n)}\r\n{n}\r\n${len(t)}\r\n{t}\r\n".encode(),
                w.check_limits,
                f"${len(e)}\r\n{e}\r\n".encode(),
            )
        )
        try:
            raw = await self._mux.evalsha(self._check.sha, w.check_keys, args, wire=wire)
        except NoScriptError:  # the server lost its scripts (a restart, SCRIPT FLUSH): load it and run it alone
            raw = await self._alone(self._check, w.check_keys, args)
        return from_wire(raw)

    def _settle_wire(self, consumer: str, handle: str, actual: int, day: int) -> tuple[list[str], bytes]:
        w = self._wires_for(consumer, day, None)
        a = str(actual)
        return w.settle_keys, w.settle_head + f"${len(handle)}\r\n{handle}\r\n${len(a)}\r\n{a}\r\n".encode()

    async def settle(self, consumer: str, handle: str, actual: int, day: int) -> int | None:
        keys, wire = self._settle_wire(consumer, handle, actual, day)
        try:
            raw = await self._mux.evalsha(self._settle.sha, keys, [handle, actual], wire=wire)
        except NoScriptError:
            raw = await self._alone(self._settle, keys, [handle, actual])
        return _settled(raw)

    def settle_soon(self, consumer: str, handle: str, actual: int, day: int, answered: Settled) -> None:
        """Write the settle now (behind everything this process issued before it, ahead of everything after) and
        return at once; ``answered`` gets settle()'s answer, or its error, when Redis replies."""
        keys, wire = self._settle_wire(consumer, handle, actual, day)

        def sent(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                answered(None, TimeoutError("the settle was abandoned"))
                return
            exc = f.exception()
            if isinstance(exc, NoScriptError):  # the server lost its scripts: load and run it alone
                retry = asyncio.get_running_loop().create_task(self._alone(self._settle, keys, [handle, actual]))
                retry.add_done_callback(lambda t: _chain(t, answered))
            elif exc is not None:
                answered(None, exc)
            else:
                answered(_settled(f.result()), None)

        self._mux.evalsha_now(self._settle.sha, keys, [handle, actual], wire=wire).add_done_callback(sent)

    async def _alone(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """``script`` on a pooled connection of its own (it loads itself on NOSCRIPT), within the store's bound."""
        async with self._store.bounded("quota") if self._store else contextlib.nullcontext():
            return await script(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._mux.aclose()


class _Wires(NamedTuple):
    day: int
    limits: Limits
    check_keys: list[str]
    settle_keys: list[str]
    check_head: bytes  # EVALSHA, the script, its KEYS
    check_limits: bytes  # its ARGV[3..8]: the limits, the window and the lease
    settle_head: bytes
    check_argv: tuple[int, ...]  # ARGV[3..8] unpacked


def _check_args(now_ms: int, tokens: int, limits: Limits, lease_ms: int, day_left: int | None = None) -> list[Any]:
    """check.lua's ARGV."""
    return [
        now_ms,
        tokens,
        limits.rpm or 0,
        limits.tpm or 0,
        limits.tpd or 0,
        limits.max_concurrency or 0,
        WINDOW_MS,
        lease_ms,
        ms_to_day_end(now_ms) if day_left is None else day_left,
    ]


def _settled(raw: Any) -> int | None:
    settled, delta = raw
    return int(delta) if int(settled) == 1 else None


def _chain(task: asyncio.Task[Any], answered: Settled) -> None:
    if task.cancelled():
        answered(None, TimeoutError("the settle was abandoned"))
    elif (exc := task.exception()) is not None:
        answered(None, exc)
    else:
        answered(_settled(task.result()), None)
