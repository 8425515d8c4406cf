"""Structured logs: JSON lines written by a log object the app owns (nothing registered globally, no config at
import). One ``request`` line per finished request, plus event lines (``breaker_transition``, ``config_error``,
``state_store_failure``, ...). Timestamps come from the injected clock. No prompt or response text, unless
``log_payloads`` is set (debug only).

Each line is serialised with orjson and written to the stream: the stdlib ``logging`` machinery (a LogRecord,
handler locks, a formatter) cost several times more per request and bought nothing here. Once :meth:`EventLog.start`
has run (the app's start), the lines of one event-loop tick are written together by one callback at the start of
the next (one ``write`` and one flush for all of them); :meth:`EventLog.flush` writes them at once, and
:meth:`EventLog.close` (the app's stop) writes what is pending, so a graceful shutdown loses no line. Before the
start and after the close, each line is written and flushed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

import orjson

from gateway.clock import Clock
from gateway.observability.nexttick import NextTick
from gateway.requestrecord import RequestRecord

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_EXACT = 2.0**51  # below it a product x * 1e6 is within 0.125 of the exact one
# The largest write a pipe keeps whole (POSIX guarantees 512; Linux 4096): the workers of one server share stderr,
# under Compose, systemd and Kubernetes a pipe, and a longer write can be interleaved with another worker's.
PIPE_BUF = 4096


def round6(x: float) -> float:
    """``round(x, 6)``, bit for bit, mostly without its decimal string (about 8,000 instructions for an epoch
    time, 3,500 for a duration; this takes about a third of that). ``y = x * 1e6`` is within 0.125 of the exact
    product below 2**51, so when ``y`` is more than 0.375 away from the nearest half-integer, its nearest integer
    ``r`` is the exact product's too, and ``r / 1e6`` (a correctly rounded division of exact operands) is the
    double nearest ``r`` millionths, which is what ``round`` returns. Zero, negatives, near-ties, NaN and the
    infinities go to ``round``, and so does anything that is not a float (``round(5, 6)`` is the int 5)."""
    if x.__class__ is not float:
        return round(x, 6)
    y = x * 1e6
    if 0.0 < y < _EXACT:
        r = int(y + 0.5)
        if r and -0.375 < y - r < 0.375:
            return r / 1e6
    return round(x, 6)


class EventLog:
    """The app's JSON logger."""

    def __init__(
        self,
        clock: Clock,
        *,
        stream: IO[str] | None = None,
        level: str = "info",
        log_payloads: bool = False,
        name: str = "faultline",
    ) -> None:
        self._clock = clock
        self.log_payloads = log_payloads
        self.name = name
        self._threshold = _LEVELS[level]
        self._stream: IO[str] = stream if stream is not None else sys.stderr
        self._pending: list[bytes] = []  # the lines of this tick, once started
        self._later: Callable[[Callable[[], None]], None] | None = None  # set while started (a NextTick)

    def set_stream(self, stream: IO[str]) -> None:
        """Write to ``stream`` from now on (tests capture the lines this way); the lines pending go to the old one."""
        self.flush()
        self._stream = stream

    def start(self, tick: NextTick | None = None) -> None:
        """On the running event loop: from now on the lines of one tick are written together, on the next
        (through ``tick``, shared with the request log, or a tick of the log's own)."""
        self._later = tick if tick is not None else NextTick(asyncio.get_running_loop())

    def enabled(self, level: str) -> bool:
        return _LEVELS[level] >= self._threshold

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        if _LEVELS[level] < self._threshold:
            return
        line: dict[str, Any] = {"ts": round6(self._clock.now()), "level": level, "event": event}
        line.update(fields)
        self._write(line)

    def unhandled(self, request_id: str, exc: BaseException) -> None:
        """An error nothing handled: its type and where it was raised, never its message (which may quote the
        request)."""
        frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
        self.event("unhandled_error", level="error", request_id=request_id, error=type(exc).__name__, frames=frames)

    def _write(self, line: dict[str, Any]) -> None:
        data = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)
        pending = self._pending
        pending.append(data)
        if self._later is None:
            self.flush()
        elif len(pending) == 1:
            try:
                self._later(self.flush)
            except RuntimeError:  # the loop is closed: no later tick
                self._later = None
                self.flush()

    def flush(self) -> None:
        """Write the lines not written yet, and flush the stream: whole lines, at most :data:`PIPE_BUF` bytes a
        write (a longer line alone), so the lines of workers sharing one pipe never interleave."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            if len(pending) == 1:
                self._out(pending[0])
                return
            chunk: list[bytes] = []
            size = 0
            for line in pending:
                if chunk and size + len(line) > PIPE_BUF:
                    self._out(b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            self._out(b"".join(chunk))
        except (OSError, ValueError):  # a closed or broken log stream must never fail a request
            pass

    def _out(self, data: bytes) -> None:
        self._stream.write(data.decode())
        self._stream.flush()

    def request(
        self,
        rec: RequestRecord,
        *,
        trace_id: str | None,
        latency_s: float,
        ttft_s: float | None,
        payload: Any = None,
    ) -> None:
        """The request's line: ids, who, what, where, how it went, how long, how many tokens."""
        level = "error" if rec.status >= 500 else "warning" if rec.status >= 400 else "info"
        if _LEVELS[level] < self._threshold:
            return
        fields: dict[str, Any] = {
            "ts": round6(self._clock.now()),
            "level": level,
            "event": "request",
            "request_id": rec.request_id,
            "trace_id": trace_id,
            "consumer": rec.consumer,
            "model": rec.model,
            "provider": rec.provider,
            "stream": rec.stream,
            "status": rec.status,
            "outcome": rec.outcome,
            "error_type": rec.error_type,
            "latency_s": round6(latency_s),
            "ttft_s": None if ttft_s is None else round6(ttft_s),
            "attempts": len(rec.attempts),
            "retries": rec.retries,
            "tokens_in": rec.tokens_in,
            "tokens_out": rec.tokens_out,
            "cost_usd": rec.cost_usd,
        }
        if rec.run_id is not None:
            fields["run_id"] = rec.run_id
        if self.log_payloads and payload is not None:
            fields["payload"] = payload
        self._write(fields)

    def close(self) -> None:
        """Write what is pending and flush; from now on each line is written at once."""
        self._later = None
        self.flush()
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
