"""uvicorn's httptools HTTP/1.1 protocol, with the limits of gateway/connection/policy.py.

``python -m gateway`` passes :class:`GuardedHttpToolsProtocol` to uvicorn as its ``http`` protocol; each
connection reads its :class:`ConnectionPolicy` from the ASGI lifespan state the app published. Per connection:

* the head clock: from the connection's opening (or the first byte of a later request) to the end of the head,
  ``header_timeout_s``; then a 408 when bytes of that head arrived, a plain close when none did;
* the body clock: a pause between two reads of a request body longer than ``body_timeout_s`` (not counting time
  the server itself holds the client: reading paused, 100-continue not sent yet) ends the connection, with a
  408 when no reply has started;
* the head's size: over ``max_header_count`` fields or ``max_header_bytes``, a 431; a head still incomplete after
  more bytes than that is refused at once, so the parser holds at most the limit plus one read;
* the worker's connections: a connection opened while ``max_connections`` admitted ones are open has its request
  answered 503 (``server_overloaded``, ``Retry-After``);
* keep-alive: ``keep_alive_timeout_s`` idle (uvicorn's own timer), and ``max_requests_per_connection`` requests,
  the last one answered with ``Connection: close``.

A refused connection gets its reply, then the server stops writing (a half close) and discards what the client
still sends for at most :data:`LINGER_S`, so a client that is still sending reads the reply instead of a reset.

A request costs three more Python calls and a few attribute reads and writes: a timer is armed for each new
connection, and otherwise only for a head or a body that does not arrive in one read (docs/ARCHITECTURE.md has
the measured cost).
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.connection.policy import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    HEADERS_TOO_LARGE,
    INVALID_HTTP,
    OVER_CAPACITY,
    STATE_KEY,
    ConnectionPolicy,
    RawReply,
    head_size,
)
from gateway.settings.connection import ConnectionLimits

LINGER_S = 1.0  # after a refusal, how long what the client still sends is read and dropped before the close


class _Refused(Exception):
    """Raised in a parser callback to stop the parser: the head is answered with ``reply``, then closed."""

    def __init__(self, reply: RawReply, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        policy = app_state.get(STATE_KEY)
        if not isinstance(policy, ConnectionPolicy):  # an app that publishes none: the defaults, counted nowhere
            policy = app_state[STATE_KEY] = ConnectionPolicy.build(ConnectionLimits())
        self._policy = policy
        self._limits = policy.limits
        self.timeout_keep_alive = policy.limits.keep_alive_timeout_s  # type: ignore[assignment]  # uvicorn says int; its timer takes a float
        self._head_open = True  # waiting for (the rest of) a request head
        self._head_bytes = 0  # bytes read since the head began, counted from the start of a read
        self._head_exact = False  # the head began inside a read: its size is summed at its end
        self._head_timer: TimerHandle | None = None
        self._body_open = False  # a request body is being read
        self._body_read_at = 0.0
        self._body_timer: TimerHandle | None = None
        self._requests = 0
        self._admitted = False  # counted in the worker's admitted connections
        self._over_capacity = False
        self._discarding = False

    # -- the connection -----------------------------------------------------------------------------------------

    # Ignored on the next line: uvicorn's protocol is typed for any BaseTransport; a socket's is an asyncio.Transport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        admitted = self._policy.admitted
        if admitted.open < self._limits.max_connections:
            admitted.open += 1
            self._admitted = True
        else:
            self._over_capacity = True
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        if self._admitted:
            self._admitted = False
            self._policy.admitted.open -= 1

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the clocks and the size bound; a refused head gets its reply instead of a plain 400."""
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        if self._head_open:
            self._head_bytes += len(data)
        elif not self._body_open and (self.cycle is None or self.cycle.response_complete):
            self._head_open = True  # the previous request is read and answered: this read starts the next head
            self._head_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.reply, refused.reason)
            else:
                self._refuse(self._policy.malformed, INVALID_HTTP)
            return
        except httptools.HttpParserUpgrade:
            self._upgrade()
            return
        if self._head_open or self._body_open:  # a head or a body did not end with this read
            self._unfinished()

    def _unfinished(self) -> None:
        if self._head_open:
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(self._policy.head_too_large, HEADERS_TOO_LARGE)
            elif self._head_timer is None and (self._head_bytes or self._head_exact):  # a head began
                self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_expired)
        else:
            self._body_read_at = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._limits.body_timeout_s, self._body_check)

    def _upgrade(self) -> None:
        if self._should_upgrade():  # the WebSocket protocol takes the connection over (none when ws="none")
            self._cancel_timers()
            self._release()
            self.handle_websocket_upgrade()

    # -- parser callbacks ---------------------------------------------------------------------------------------

    # The parser calls these for every request: the base methods are called directly, without super()'s cost.

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if not self._head_open:  # a head that begins inside a read (pipelined, or after an early reply)
            self._head_open = True
            self._head_exact = True

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_open = False
        limits = self._limits
        if len(self.headers) > limits.max_header_count or (
            (self._head_exact or self._head_bytes > limits.max_header_bytes)
            and head_size(self.url, self.headers) > limits.max_header_bytes
        ):
            raise _Refused(self._policy.head_too_large, HEADERS_TOO_LARGE)
        if self._over_capacity:
            raise _Refused(self._policy.overloaded, OVER_CAPACITY)
        self._head_bytes = 0
        self._head_exact = False
        HttpToolsProtocol.on_headers_complete(self)
        self._body_open = True
        self._requests += 1
        if self._requests >= limits.max_requests_per_connection and self.cycle is not None:
            self.cycle.keep_alive = False  # the reply says Connection: close, then uvicorn closes

    def on_message_complete(self) -> None:
        self._body_open = False
        HttpToolsProtocol.on_message_complete(self)

    # -- limits -------------------------------------------------------------------------------------------------

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # the server's reply is still going out
            self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_expired)
            return
        self._policy.closed(HEADER_TIMEOUT)
        if self._head_bytes or self._head_exact:  # part of a head came: it is answered
            self.transport.write(self._policy.head_timed_out.render(self.server_state.default_headers))
        self.transport.close()

    def _body_check(self) -> None:
        self._body_timer = None
        if not self._body_open or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:  # the server holds the client
            self._body_read_at = now
        left = self._body_read_at + self._limits.body_timeout_s - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_check)
            return
        self._policy.closed(BODY_TIMEOUT)
        if not self.cycle.response_started:
            self.transport.write(self._policy.body_timed_out.render(self.server_state.default_headers))
        self.transport.close()

    def _refuse(self, reply: RawReply, reason: str) -> None:
        """Answer ``reply`` and end the connection; a reply of the app still going out is cut instead."""
        self._policy.closed(reason)
        self._cancel_timers()
        self._discarding = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.transport.write(reply.render(self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._head_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def _cancel_timers(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
