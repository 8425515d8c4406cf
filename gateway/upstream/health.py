"""Active health checks of the upstreams, on their own task, off the request path.

Each provider with a ``health_check`` is sent ``GET <path>`` every ``interval_s`` through the upstream transport
(the same seam, credentials and timeouts as requests), waiting at most ``timeout_s``. A 2xx answer is healthy; an
error status, a connection failure or no answer is a failed check, and ``unhealthy_after`` failed checks in a row
make the provider unhealthy (one success makes it healthy again). Before its first check a provider is
``unknown``. Time and waits come from the injected clock. The result is reported, not acted on: routing follows
the breakers; ``/v1/ready`` shows both and the ``faultline_provider_healthy`` gauge follows the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from gateway.clock import Clock
from gateway.settings.upstream import HealthCheck
from gateway.transport import Transport, TransportError

Health = Literal["healthy", "unhealthy", "unknown"]


class HealthEvents(Protocol):
    def provider_health(self, provider: str, healthy: bool, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One provider's check: where, with which headers, and how."""

    provider: str
    url: str
    headers: Mapping[str, str]
    check: HealthCheck


def check_url(base_url: str, path: str) -> str:
    """``path`` against the provider's base URL: relative to it, or from its origin when it starts with /."""
    if path.startswith("/"):
        parts = urlsplit(base_url)
        return f"{parts.scheme}://{parts.netloc}{path}"
    return base_url.rstrip("/") + "/" + path


@dataclass(slots=True)
class _Status:
    health: Health = "unknown"
    failures: int = 0
    checked_at: float | None = None  # the clock's now() of the last check


class HealthChecks:
    """``await checks.start()`` runs one task per target; :meth:`states` is what ``/v1/ready`` reports."""

    def __init__(self, targets: Sequence[Target], transport: Transport, clock: Clock, events: HealthEvents) -> None:
        self._targets = list(targets)
        self._transport = transport
        self._clock = clock
        self._events = events
        self._status = {t.provider: _Status() for t in targets}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled by a reload, not finished yet: stop() awaits them
        self._started = False

    def states(self) -> dict[str, dict[str, object]]:
        """Each checked provider: ``health`` and ``checked_at`` (epoch seconds, or None). Why a check failed is
        logged (``provider_health``), not reported here."""
        return {name: {"health": st.health, "checked_at": st.checked_at} for name, st in self._status.items()}

    def health(self, provider: str) -> Health | None:
        """None for a provider that is not checked."""
        st = self._status.get(provider)
        return None if st is None else st.health

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(t)) for t in self._targets]
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self._stopping]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def retarget(self, targets: Sequence[Target]) -> None:
        """A reloaded configuration's targets (gateway/reload.py): an unchanged target keeps its task and its
        state; a new or changed one starts from ``unknown``; a removed one is no longer checked or reported."""
        kept = [i for i, t in enumerate(self._targets) if t in targets]
        for i, task in enumerate(self._tasks):
            if i not in kept:
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
        added = [t for t in targets if t not in self._targets]
        tasks = [self._tasks[i] for i in kept if i < len(self._tasks)]
        if self._started:
            loop = asyncio.get_running_loop()
            tasks += [loop.create_task(self._run(t)) for t in added]
        self._tasks = tasks
        self._targets = [self._targets[i] for i in kept] + added
        old = self._status
        self._status = {t.provider: _Status() if t in added else old[t.provider] for t in self._targets}

    async def _run(self, target: Target) -> None:
        while True:
            await self.check(target)
            await self._clock.sleep(target.check.interval_s)

    async def check(self, target: Target) -> Health:
        """One check of ``target`` now; its outcome updates the provider's state."""
        reason = await self._probe(target)
        st = self._status[target.provider]
        st.checked_at = self._clock.now()
        before = st.health
        if reason is None:
            st.failures, st.health = 0, "healthy"
        else:
            st.failures += 1
            if st.failures >= target.check.unhealthy_after:
                st.health = "unhealthy"
        if st.health != before and st.health != "unknown":
            self._events.provider_health(target.provider, st.health == "healthy", reason or "check succeeded")
        return st.health

    async def _probe(self, target: Target) -> str | None:
        """None when the upstream answered 2xx; else why not (in the gateway's own words)."""
        try:
            async with asyncio.timeout(target.check.timeout_s):
                resp = await self._transport.send(
                    target.url, target.headers, b"", connect_timeout=target.check.timeout_s
                )
                try:
                    await resp.read()
                finally:
                    await resp.aclose()
        except TimeoutError:
            return f"no answer within {target.check.timeout_s:g}s"
        except (TransportError, OSError) as exc:
            return f"connection failed ({type(exc).__name__})"
        return None if 200 <= resp.status < 300 else f"status {resp.status}"
