"""Structured logs: JSON lines through a stdlib logger owned by the app (not registered globally, no config at
import). One ``request`` line per finished request, plus event lines (``breaker_transition``, ``config_error``,
``state_store_failure``, ...). Timestamps come from the injected clock. No prompt or response text, unless
``log_payloads`` is set (debug only).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import orjson

from gateway.clock import Clock
from gateway.requestlog import RequestRecord

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    """Renders ``record.fields`` (a dict) as one JSON object; other records as {ts?, level, event, message}."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields is None:
            fields = {"level": record.levelname.lower(), "event": "log", "message": record.getMessage()}
        return orjson.dumps(fields, default=str).decode()


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
        self.logger = logging.Logger(name, _LEVELS[level])  # a private logger: no global registry, no propagation
        self.logger.propagate = False
        self._handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        self._handler.setFormatter(JsonFormatter())
        self.logger.addHandler(self._handler)

    def set_stream(self, stream: IO[str]) -> None:
        """Write to ``stream`` from now on (tests capture the lines this way)."""
        self._handler.setStream(stream)

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        lvl = _LEVELS[level]
        if not self.logger.isEnabledFor(lvl):
            return
        line: dict[str, Any] = {"ts": round(self._clock.now(), 6), "level": level, "event": event}
        line.update(fields)
        self.logger.log(lvl, event, extra={"fields": line})

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
        fields: dict[str, Any] = {
            "request_id": rec.request_id,
            "trace_id": trace_id,
            "consumer": rec.consumer,
            "model": rec.model,
            "provider": rec.provider,
            "stream": rec.stream,
            "status": rec.status,
            "outcome": rec.outcome,
            "error_type": rec.error_type,
            "latency_s": round(latency_s, 6),
            "ttft_s": None if ttft_s is None else round(ttft_s, 6),
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
        self.event("request", level=level, **fields)

    def close(self) -> None:
        for h in list(self.logger.handlers):
            h.flush()
            self.logger.removeHandler(h)
