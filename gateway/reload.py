"""Reloading the configuration while serving (docs/OPERATIONS.md, "Reload").

A *generation* is a :class:`~gateway.runtime.Runtime` built from one reading of the configuration, with its
route table and call factory. :meth:`Reloader.reload` reads the configuration again (the same source as at
start), refuses it when it is invalid or when a setting that only a restart can change differs
(:data:`RESTART_ONLY`), else builds the next generation (gateway/runtime.py ``next_runtime``: the long-lived
parts shared, the router's state carried over) and swaps it in with one synchronous call: a request that
arrived before the swap finishes on the generation it started with, every later one runs on the new one.

Triggers: ``SIGHUP`` (the server process, gateway/main.py; with several workers the supervisor forwards it to
each, gateway/supervisor.py) and ``POST /admin/reload`` (:class:`ReloadRoutes`). With several workers the admin
call validates the file in the worker that received it, asks the supervisor to signal every worker, and answers
with its own worker's result.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.call import Call, Reply
from gateway.config import ConfigError, Settings
from gateway.errors import InvalidRequest, Unavailable
from gateway.runtime import Runtime, adopt, next_runtime

Result = Literal["ok", "invalid", "restart_required"]

# Settings read once, by parts that live as long as the process: changing them needs a restart.
RESTART_ONLY = (
    "seed",
    "server.host",
    "server.port",
    "server.metrics_port",
    "server.limits",  # each connection's protocol reads them from the lifespan state, published once
    "state",
    "database",
    "observability",
    "quota.key_prefix",
    "quota.failure_policy",
    "quota.replicas",
    "quota.lease_ttl_s",
    "quota.max_store_calls",
    "quota.max_unsettled",
)
SUPERVISOR_ENV = "FAULTLINE_SUPERVISOR_PID"  # the parent of several workers (gateway/supervisor.py)
CONFIRM_TIMEOUT_S = 10.0  # several workers: how long an admin call waits for its own worker's reload


def restart_required(old: Settings, new: Settings) -> list[str]:
    """The settings of :data:`RESTART_ONLY` that differ between ``old`` and ``new``."""
    return [path for path in RESTART_ONLY if _get(old, path) != _get(new, path)]


def _get(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def changed_sections(old: Settings, new: Settings) -> list[str]:
    return [name for name in Settings.model_fields if getattr(old, name) != getattr(new, name)]


def digest(settings: Settings) -> str:
    """A short fingerprint of a configuration, to compare what workers serve."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


def problems(exc: ConfigError) -> list[str]:
    """Each problem of a refused configuration, ``field: message`` (one line each)."""
    _, listed, rest = str(exc).partition(": invalid configuration:\n")  # gateway/config.py parse_settings
    lines = [line.strip() for line in (rest if listed else str(exc)).splitlines() if line.strip()]
    return lines if listed else [" ".join(lines)]


BUILD_FAILED = "the configuration could not be built; see the gateway's config_error log line"


class ReloadRefused(Exception):
    """``errors`` are for the admin client; ``detail`` (what went wrong inside the gateway) for the log only."""

    def __init__(self, result: Result, errors: list[str], detail: str | None = None) -> None:
        super().__init__("; ".join(errors))
        self.result: Result = result
        self.errors = errors
        self.detail = detail

    def outcome(self, generation: int) -> Outcome:
        return Outcome(self.result, generation, self.errors, detail=self.detail)


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    generation: int  # the generation served after the attempt
    errors: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    detail: str | None = None  # logged with the outcome, never sent to a client (not in to_dict)

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "generation": self.generation, "errors": self.errors, "changed": self.changed}


@dataclass(frozen=True, slots=True)
class ReloadWiring:
    """Where a reload reads the configuration, and how it is triggered."""

    source: Callable[[], Settings]  # reads the configuration as at start (file and environment overrides)
    on_signal: bool = False  # reload on SIGHUP (the server process)
    notify: Callable[[], None] | None = None  # several workers: ask the supervisor to signal each of them


# Given a runtime, builds what serves it (route table, call factory) and returns the function that swaps it in.
Serve = Callable[[Runtime], Callable[[], None]]


class Reloader:
    def __init__(self, rt: Runtime, serve: Serve, wiring: ReloadWiring | None) -> None:
        self.current = rt
        self._serve = serve
        self._wiring = wiring
        self.last: Outcome | None = None
        self._waiters: list[asyncio.Future[Outcome]] = []
        self._listening = False

    @property
    def digest(self) -> str:
        return digest(self.current.settings)

    def reload(self, trigger: str) -> Outcome:
        """Read the configuration again and serve it, or refuse it and go on serving the old one."""
        old = self.current
        try:
            settings = self._read()
            self._check(old.settings, settings)
            self._build(settings, carry=False)  # refused here, before the old generation hands anything over
            rt, swap = self._build(settings, carry=True)
        except ReloadRefused as refused:
            return self._done(refused.outcome(old.generation), trigger)
        adopt(rt)
        swap()
        self.current = rt
        return self._done(Outcome("ok", rt.generation, changed=changed_sections(old.settings, settings)), trigger)

    def validate(self) -> None:
        """Raise :class:`ReloadRefused` when a reload now would be refused; changes nothing (no state carried)."""
        settings = self._read()
        self._check(self.current.settings, settings)
        self._build(settings, carry=False)

    def _build(self, settings: Settings, *, carry: bool) -> tuple[Runtime, Callable[[], None]]:
        try:
            rt = next_runtime(self.current, settings, carry=carry)
            return rt, self._serve(rt)
        except ConfigError as exc:
            raise ReloadRefused("invalid", problems(exc)) from None
        except Exception as exc:  # a part that cannot be built from these settings: refused, never half-applied
            raise ReloadRefused("invalid", [BUILD_FAILED], detail=f"{type(exc).__name__}: {exc}") from None

    def _read(self) -> Settings:
        if self._wiring is None:
            raise ReloadRefused("invalid", ["This gateway was started without a configuration file to reload."])
        try:
            return self._wiring.source()
        except ConfigError as exc:
            raise ReloadRefused("invalid", problems(exc)) from None

    def _check(self, old: Settings, new: Settings) -> None:
        """Refuse a configuration that changes a setting only a restart can change."""
        fixed = restart_required(old, new)
        if fixed:
            errors = [f"{path}: changed; takes effect only on a restart" for path in fixed]
            raise ReloadRefused("restart_required", errors)

    def _done(self, outcome: Outcome, trigger: str) -> Outcome:
        self.last = outcome
        rt = self.current
        fields: dict[str, Any] = {"trigger": trigger}
        fields.update({"changed": outcome.changed} if outcome.result == "ok" else {"errors": outcome.errors})
        if outcome.result != "ok":
            fields["message"] = "configuration reload refused: " + "; ".join(outcome.errors)
            if outcome.detail is not None:
                fields["detail"] = outcome.detail
        rt.telemetry.config_reloaded(outcome.result, generation=outcome.generation, **fields)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(outcome)
        return outcome

    async def request(self) -> Outcome:
        """The admin call: in one process, reload now; with several workers, validate here, have every worker
        signalled, and wait (bounded) for this worker's own reload."""
        wiring = self._wiring
        if wiring is None or wiring.notify is None:
            return self.reload("admin")
        try:
            self.validate()
        except ReloadRefused as refused:
            return self._done(refused.outcome(self.current.generation), "admin")
        mine: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.append(mine)
        try:
            wiring.notify()
        except OSError:  # the supervisor is gone: nobody would forward the signal
            self._waiters.remove(mine)
            raise
        async with asyncio.timeout(CONFIRM_TIMEOUT_S):
            return await mine

    # -- serving -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """The app serves (its lifespan has started): report the generation, reload on SIGHUP when wired to."""
        self.current.telemetry.metrics.reloads.serving(self.current.generation)
        if self._wiring is not None and self._wiring.on_signal and not self._listening:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload, "signal")
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._listening = False


class ConfigRefused(InvalidRequest):
    code = "invalid_config"


class ReloadRoutes:
    """``POST /admin/reload`` (reload now) and ``GET /admin/reload`` (the generation served, the last result)."""

    def __init__(self, reloader: Reloader) -> None:
        self._reloader = reloader

    async def post(self, call: Call) -> Reply:
        try:
            outcome = await self._reloader.request()
        except OSError:
            raise Unavailable(
                "The configuration is valid but the workers could not be signalled; reload each one with SIGHUP.",
                code="reload_unconfirmed",
            ) from None
        except TimeoutError:
            raise Unavailable(
                "Every worker was asked to reload; this one did not confirm in time. See GET /admin/reload.",
                code="reload_unconfirmed",
            ) from None
        if outcome.result != "ok":
            field_name, named, _ = outcome.errors[0].partition(":") if outcome.errors else ("", "", "")
            err = ConfigRefused(
                "The configuration was not reloaded: " + "; ".join(outcome.errors),
                param=field_name if named else None,
            )
            if outcome.result == "restart_required":
                err.code = "restart_required"
            raise err
        return Reply(body=orjson.dumps({**outcome.to_dict(), "digest": self._reloader.digest}))

    async def get(self, call: Call) -> Reply:
        r = self._reloader
        last = r.last.to_dict() if r.last is not None else None
        return Reply(body=orjson.dumps({"generation": r.current.generation, "digest": r.digest, "last": last}))
