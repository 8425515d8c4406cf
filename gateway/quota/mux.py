"""One Redis connection that every quota call of this process shares, in the order the calls were issued.

A call is written to the connection with the other calls of the same event-loop turn (:meth:`ScriptMux.evalsha`)
or at once (:meth:`ScriptMux.evalsha_now`), and answered by a single reader in the order the commands went out:
Redis answers a connection's commands in the order it received them. So the order in which this process issues
its calls is the order in which Redis runs them (a settle issued before a check runs before it), with no pool
checkout, no pipeline object and no round trip waited for between them; under load the reader takes many answers
in one read. Each new connection first loads ``scripts`` (a restarted server has lost them), so that an EVALSHA
does not meet NOSCRIPT and fall out of order.

The connection is taken from the client's pool (address, TLS, credentials, database as configured) and kept; the
pool closes it with the client. Its reads wait without the pool's socket timeout: a call's wait is bounded by the
state store's one bound (``store``: gateway/store/, the event loop's own lag not counted against Redis; or a plain
``timeout_s``), kept by one deadline for the connection that follows the oldest call waiting (the answers come in
order, so no later call can run out first; gateway/store/storedeadline.py ``QueueDeadline``), and a call that
waited that long drops the connection (every call in flight on it fails, as the
calls of one lost connection do; the next call takes a connection again). A connection lost fails every call in
flight. An error reply (e.g. ``NOSCRIPT``) fails only its call. A caller that stopped waiting is skipped when its
answer arrives; its command may have run, exactly as a lone command that timed out may have. With a ``store``,
every answer read counts as a round trip answered and every drop as one failed, for the store's health. On a
redis-py connection reading through hiredis, the connection's own protocol (:class:`_Replies`) feeds the socket's
bytes to that hiredis reader as they arrive and answers every whole reply in them, without a task, a stream reader
or redis-py's coroutines per reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis._parsers import _AsyncHiredisParser
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.store.client import Pool
from gateway.store.storedeadline import QueueDeadline


class Deadline(Protocol):
    def watch(self, start: float) -> None: ...

    def cancel(self) -> None: ...


class HasPool(Protocol):
    """Where the connection comes from: a client's pool (PooledClient), or one Redis Cluster node's."""

    @property
    def connection_pool(self) -> Pool: ...


class StoreHealth(Protocol):
    """The state store's bound and health (gateway.store.statestore.StateStore)."""

    def queue_deadline(self, head: Callable[[], float | None], fire: Callable[[], None]) -> Deadline: ...

    def succeeded(self, op: str) -> None: ...

    def failed(self, op: str, exc: BaseException) -> None: ...


class ScriptMux:
    """``await mux.evalsha(sha, keys, args)``; ``mux.evalsha_now(...)`` writes before it returns."""

    def __init__(
        self,
        redis: HasPool,
        *,
        timeout_s: float | None = None,
        scripts: Sequence[str] = (),
        store: StoreHealth | None = None,
        op: str = "quota",
    ) -> None:
        self._store = store
        self._op = op  # the operation its round trips count as, for the store's health
        self._pool = redis.connection_pool
        self._scripts = tuple(scripts)
        self._timeout_s = timeout_s
        self._conn: Any = None
        self._connecting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        # answers due, in the order the commands went out: (the caller's future, when it was issued or None)
        self._waiting: deque[tuple[asyncio.Future[Any], float | None]] = deque()
        self._buffer: list[tuple[bytes, asyncio.Future[Any], float | None]] = []  # issued, not yet written (packed)
        self._deadline: Deadline | None = None  # made with the first bounded call, in the running loop
        self._releasing: set[asyncio.Task[None]] = set()

    def evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        """Queue the call with the others of this loop turn; written at the end of the turn. ``wire``: the same
        command already packed (:func:`pack_command`), by a caller that keeps its unchanging parts packed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._buffer:
            loop.call_soon(self._flush)
        self._issue(wire or pack_command(("EVALSHA", sha, len(keys), *keys, *args)), future, loop.time())
        return future

    async def ping(self) -> None:
        """Connect now if not connected (and load the scripts), and wait for the answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._buffer:
            loop.call_soon(self._flush)
        self._buffer.append((pack_command(("PING",)), future, None))
        await future  # bounded by the caller (at start: a second at least, not the per-call timeout)

    def evalsha_now(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        """Write the call (and anything queued before it) now, when connected: once this returns, a call issued
        later by this process runs after it on Redis."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._issue(wire or pack_command(("EVALSHA", sha, len(keys), *keys, *args)), future, loop.time())
        self._flush()
        return future

    def _issue(self, command: bytes, future: asyncio.Future[Any], now: float) -> None:
        """Buffer a bounded call issued at ``now``: the connection's one deadline follows the oldest waiting."""
        self._buffer.append((command, future, now))
        deadline = self._deadline
        if deadline is None:
            if self._store is not None:
                deadline = self._store.queue_deadline(self._oldest, self._expired)
            elif self._timeout_s is not None:
                deadline = QueueDeadline(self._timeout_s, self._timeout_s, self._oldest, self._expired)
            else:
                return
            self._deadline = deadline
        deadline.watch(now)

    def _oldest(self) -> float | None:
        """When the oldest bounded call still waited for (written or not) was issued."""
        for future, issued in self._waiting:
            if issued is not None and not future.done():
                return issued
        for _, future, issued in self._buffer:
            if issued is not None and not future.done():
                return issued
        return None

    def _expired(self) -> None:
        """The oldest call waiting went unanswered for its bound: the connection is taken for dead."""
        self._drop(TimeoutError("no answer from the state store in time"))

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._conn is None or self._connecting is not None:
            if self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return  # written in order once connected
        batch, self._buffer = self._buffer, []
        if len(batch) == 1:  # the usual case (a settle, a check alone in its turn): no generator, no list built
            command, future, issued = batch[0]
            self._waiting.append((future, issued))
            commands = [command]
        else:
            self._waiting.extend((future, issued) for _, future, issued in batch)
            commands = [cmd for cmd, _, _ in batch]
        try:
            write_commands(self._conn._writer, commands)
        except Exception as exc:  # in flight when the connection failed: failed, and counted by the store as such
            self._drop(RedisConnectionError(f"writing to the state store failed: {exc}"))

    async def _connect(self) -> None:
        try:
            conn = await self._pool.get_connection()  # connected; held for good (the pool closes it with the client)
        except Exception as exc:
            self._connecting = None
            if self._store is not None:
                self._store.failed(self._op, exc)
            self._fail_buffered(exc)
            return
        self._conn, self._connecting = conn, None
        loop = asyncio.get_running_loop()
        raw = _raw_replies(conn)
        if raw is not None:  # its socket's bytes come straight to this connection's protocol from now on
            transport, replies, push = raw
            transport.set_protocol(_Replies(self, conn, replies, push, transport.get_protocol()))
        else:
            self._reader = loop.create_task(self._read(conn))
        loads = []
        for text in self._scripts:  # ahead of every call: a restarted server has lost them
            future: asyncio.Future[Any] = loop.create_future()
            future.add_done_callback(_ignore)
            loads.append((pack_command(("SCRIPT", "LOAD", text)), future, None))
        self._buffer[:0] = loads
        self._flush()

    def _fail_buffered(self, exc: Exception) -> None:
        batch, self._buffer = self._buffer, []
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)

    async def _read(self, conn: Any) -> None:
        """A connection without a hiredis reader over an asyncio transport (fakeredis, a wrapped connection): read
        reply by reply through redis-py."""
        try:
            while True:
                try:
                    answer: Any = await conn.read_response(timeout=math.inf)  # the calls' deadline bounds the wait
                except ResponseError as err:  # an error reply: read whole, the connection stays in step
                    answer = err
                self._answered(answer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(conn, exc)

    def _lost(self, conn: Any, exc: Exception) -> None:
        """``conn`` failed: dropped, unless it was dropped already."""
        if self._conn is conn:
            self._drop(exc)

    def _answered(self, answer: Any) -> None:
        """The next answer, in the order the commands went out: to its call, unless its caller stopped waiting."""
        future, _ = self._waiting.popleft()
        if self._store is not None:
            self._store.succeeded(self._op)
        if future.done():
            return
        if isinstance(answer, ResponseError):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    def _drop(self, exc: Exception) -> None:
        """Forget the connection (or the connection attempt); fail every call in flight or waiting for it."""
        if self._store is not None and (self._waiting or self._buffer):
            self._store.failed(self._op, exc)
        conn, self._conn = self._conn, None
        reader, self._reader = self._reader, None
        connecting, self._connecting = self._connecting, None
        for task in (reader, connecting):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(exc)
        self._fail_buffered(exc)
        if conn is not None:  # at once, without the goodbye a clean disconnect waits for
            transport = getattr(getattr(conn, "_writer", None), "transport", None)
            if transport is not None:
                transport.abort()
            task = asyncio.get_running_loop().create_task(_release(conn, self._pool))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def aclose(self) -> None:
        """Wait for the calls in flight (up to the timeout), then close the connection."""
        pending = [f for f, _ in self._waiting if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=self._timeout_s)
        conn, self._conn = self._conn, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._connecting is not None:
            self._connecting.cancel()
        if self._deadline is not None:
            self._deadline.cancel()
        if conn is not None:
            await _release(conn, self._pool)


def write_commands(writer: Any, commands: list[bytes]) -> None:
    """One write of packed commands to the connection."""
    writer.writelines(commands)


def pack_commands(commands: Sequence[tuple[Any, ...]]) -> list[bytes]:
    """Commands in Redis's wire format (RESP arrays of bulk strings). The arguments here are strings, integers
    and bytes only, which this encodes as redis-py does, at about a third of its cost (measured)."""
    return [pack_command(args) for args in commands]


def pack_command(args: Sequence[Any]) -> bytes:
    """One command in Redis's wire format: the array's length, then :func:`bulk_strings`."""
    return b"*%d\r\n%s" % (len(args), bulk_strings(args))


def bulk_strings(args: Sequence[Any]) -> bytes:
    """``args`` as RESP bulk strings, without the array header: a part of a command, packed ahead of time."""
    parts = []
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def _raw_replies(conn: Any) -> tuple[Any, Any, type | None] | None:
    """(the transport, the hiredis reader, RESP3's push message type) of a redis-py connection that reads through
    hiredis over an asyncio stream with nothing read ahead yet; ``None`` for anything else (fakeredis, a wrapped
    connection, no hiredis): read reply by reply."""
    parser = getattr(conn, "_parser", None)
    if not isinstance(conn, AbstractConnection) or not isinstance(parser, _AsyncHiredisParser):
        return None
    replies, stream = getattr(parser, "_reader", None), getattr(parser, "_stream", None)
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    if replies is None or not isinstance(stream, asyncio.StreamReader) or not hasattr(transport, "set_protocol"):
        return None  # (uvloop's transports are not asyncio.Transport instances)
    if getattr(stream, "_buffer", None) or stream.at_eof() or replies.has_data():  # read ahead: see redis-py can_read
        return None
    return transport, replies, getattr(parser, "_hiredis_PushNotificationType", None)


class _Replies(asyncio.Protocol):
    """The ordered connection's socket, read by its own protocol instead of redis-py's stream reader: the bytes go
    straight to the connection's hiredis reader (configured by redis-py: its error classes, its decoding, RESP2 or
    RESP3), and every whole reply in them answers its call at once, without a task, a stream reader or a coroutine
    per read. As redis-py does, a reply that is (or starts with) a connection error fails the connection, and a
    RESP3 push message (none is asked for here) answers no call. The end of the connection and the write flow
    control still reach redis-py's protocol (``inner``), so the connection closes as it would have."""

    def __init__(self, mux: ScriptMux, conn: Any, replies: Any, push: type | None, inner: Any) -> None:
        self._mux = mux
        self._conn = conn
        self._replies = replies
        self._push = push
        self._inner = inner

    def data_received(self, data: bytes) -> None:
        replies, push = self._replies, self._push
        try:
            replies.feed(data)
            answer = replies.gets()
            while answer is not NOT_ENOUGH_DATA:  # a whole reply
                if isinstance(answer, RedisConnectionError):
                    raise answer
                if type(answer) is list and answer and isinstance(answer[0], RedisConnectionError):
                    raise answer[0]
                if push is None or not isinstance(answer, push):
                    self._mux._answered(answer)
                answer = replies.gets()
        except Exception as exc:
            self._mux._lost(self._conn, exc)

    def eof_received(self) -> bool:
        self._inner.eof_received()
        self._mux._lost(self._conn, RedisConnectionError("the state store closed the connection"))
        return False  # closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)
        self._mux._lost(self._conn, RedisConnectionError("the state store closed the connection"))

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed load shows as NOSCRIPT on the call that needs it


async def _release(conn: Any, pool: Pool) -> None:
    """Close the connection and hand it back to its pool (which opens a new one when it is next needed)."""
    with contextlib.suppress(Exception):
        await conn.disconnect(nowait=True)
    with contextlib.suppress(Exception):
        await pool.release(conn)
