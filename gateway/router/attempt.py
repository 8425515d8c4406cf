"""One attempt: one route tried once, and everything it holds until it is over.

An :class:`Attempt` is created once the route's breaker admitted it (a half-open breaker's probe is one of the
things it holds). :meth:`Attempt.run` takes a slot at the provider (waiting in its queue, or shed), cuts the time
limits to the request deadline, applies chaos, and calls the adapter. It ends in exactly one place,
:meth:`Attempt.end`, whatever happens: an answer, a failure, a cancellation, or — for a stream handed to the
client — when the relay (gateway/router/relay.py) is done with it. ``end`` frees the provider slot, then gives the
verdict on the provider (breaker, retry budget, latency, quota cool-off) or, when the request went away or ran out
of its own time, gives a half-open probe back without one.

With ``breaker.slow_call_s`` set, an attempt that has no answer (the JSON body, or the stream's head) that long
after it got its provider slot counts as a slow call in its breaker at that moment (a timer), not when it ends:
a hung upstream opens its breaker after ``slow_call_s`` even if its attempts are cancelled (a hedge won) rather
than timed out. An answer that came later than ``slow_call_s`` before the timer ran counts as slow at ``end``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from gateway.adapters.base import AttemptTimeouts, ChunkStream, OpenAICompatibleAdapter
from gateway.adapters.upstreamerrors import UpstreamClientError, UpstreamError, UpstreamQuotaExhausted
from gateway.call import Call, Reply
from gateway.clock import Clock
from gateway.config import Route
from gateway.requestrecord import AttemptRecord
from gateway.router.breaker import Transition
from gateway.router.breakers import Breakers
from gateway.router.chaos import Chaos, Injection, injected_error
from gateway.router.cooloff import QuotaCooloffs
from gateway.router.deadline import AttemptLimits, DeadlineReached
from gateway.router.guardrails import Guardrails, note_actions
from gateway.router.latency import TtftWindow
from gateway.router.relay import Relay
from gateway.router.retry import provider_refused
from gateway.router.retrybudget import RetryBudget
from gateway.router.routerevents import RouterEvents
from gateway.router.selection import LatencyEwma
from gateway.router.shedding import LoadShedder


@dataclass(slots=True)
class Policies:
    """What one replica's attempts share: the providers, their limits and the state every verdict updates."""

    clock: Clock
    adapters: Mapping[str, OpenAICompatibleAdapter]
    breakers: Breakers
    budget: RetryBudget
    shedder: LoadShedder
    cooloffs: QuotaCooloffs
    latency: LatencyEwma
    ttft: TtftWindow
    limits: AttemptLimits
    chaos: Chaos
    guardrails: Guardrails
    events: RouterEvents
    relay: Relay
    slow_call_s: float | None = None  # breaker.slow_call_s


class Race:
    """Two attempts of one request (a hedge): the first to answer wins; the other loses when it answers."""

    __slots__ = ("winner",)

    def __init__(self) -> None:
        self.winner: Attempt | None = None

    def claim(self, attempt: Attempt) -> bool:
        if self.winner is None:
            self.winner = attempt
        return self.winner is attempt


class RaceLost(Exception):
    """The attempt answered after the other attempt of its race: it ends as cancelled, without a verdict."""


def note_transition(call: Call, event: Transition | None) -> None:
    """A breaker transition caused by this request goes into its record."""
    if event is not None:
        call.record.decisions.setdefault("breaker", []).append(event.to_dict())


class Attempt:
    """One route tried once (see the module's docstring). Holds the breaker probe from creation on."""

    __slots__ = (
        "_call",
        "_ended",
        "_late",
        "_p",
        "_sent",
        "_slot",
        "_slow",
        "_t0",
        "_watch",
        "key",
        "model",
        "provider",
        "race",
        "record",
        "route",
    )

    def __init__(self, policies: Policies, call: Call, route: Route, key: str) -> None:
        self._p = policies
        self._call = call
        self.route = route
        self.provider, self.model = route.provider, route.model  # read once: the route is a configuration model
        self.key = key  # the breaker's key
        self.record: AttemptRecord | None = None  # the request log's entry, once the attempt is under way
        self.race: Race | None = None  # set when the attempt is hedged
        self._slot = False  # holds a slot at the provider
        self._ended = False
        self._t0 = self._sent = 0.0
        self._watch: asyncio.Task[None] | None = None  # the slow-call timer
        self._slow = False  # counted as a slow call
        self._late = False  # answered after slow_call_s, before the timer ran

    async def run(self, priority: int, group: str) -> Reply:
        """Make the attempt. Raises :class:`UpstreamError` (the verdict given), ``Shed`` or ``DeadlineExceeded``."""
        call, p = self._call, self._p
        assert call.body is not None
        self._t0 = mono = p.clock.monotonic()
        try:  # a free slot at the provider without a coroutine; else wait in its queue
            if p.shedder.try_acquire(self.provider):
                limits = self._begin(mono)
            else:
                limits = await self._queue(priority)
                mono = self._sent  # the clock read when the slot came, after the wait: the deadline stays put
        except BaseException:  # shed, out of time, or cancelled before the call
            await self.end(cancelled=True)
            raise
        if p.slow_call_s is not None:
            self._watch = asyncio.create_task(self._went_slow(p.slow_call_s))
        try:
            if p.chaos.enabled:  # off: no draw, nothing to decide
                consumer = call.consumer.name if call.consumer is not None else None
                injection = p.chaos.decide(self.provider, self.model, consumer, group=group)
                if injection is not None:
                    limits = await self._inject(injection, limits)
                    mono = p.clock.monotonic()
            if call.body.stream:
                stream = await self._open_stream(limits, mono)
                return await p.relay.start(call, self, stream, limits)  # from here on the relay ends the attempt
            return await self._complete(limits, mono)
        except UpstreamError as exc:
            failure = self.failed(exc, limits)
            await self.end(failure)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException:
            await self.end(cancelled=True)
            raise

    def _begin(self, mono: float) -> AttemptTimeouts:
        """The attempt holds its provider slot (at ``mono``): the time limits and the record."""
        call, p, provider = self._call, self._p, self.provider
        self._slot = True
        self._sent = mono
        try:
            limits = p.limits.at(call.deadline, mono)
        except BaseException:
            call.record.decisions["deadline_reached"] = provider
            raise
        self.record = AttemptRecord(provider, self.model, p.clock.now())  # positional: no keyword dict
        call.record.attempts.append(self.record)
        call.record.provider = provider
        return limits

    async def _queue(self, priority: int) -> AttemptTimeouts:
        """Wait in the provider's queue for a slot, then :meth:`_begin`."""
        p = self._p
        await p.shedder.acquire(self.provider, priority, max_wait_s=self._call.deadline - self._t0)
        return self._begin(p.clock.monotonic())

    async def _went_slow(self, after_s: float) -> None:
        await self._p.clock.sleep(after_s)
        await self._note_slow()

    async def _note_slow(self) -> None:
        self._slow = True
        self._p.events.slow_call(self.provider)
        note_transition(self._call, await self._p.breakers.slow(self.key))

    def _deadline(self, mono: float) -> float:
        """The request deadline in event-loop time (``mono``: the clock's time now): the adapter's one timer of
        the call ends the call there (gateway/adapters/bound.py)."""
        return asyncio.get_running_loop().time() + (self._call.deadline - mono)

    async def _open_stream(self, limits: AttemptTimeouts, mono: float) -> ChunkStream:
        call = self._call
        assert call.payload is not None
        return await self._p.adapters[self.provider].open_stream(
            call.payload,
            model=self.model,
            request_id=call.request_id,
            headers=call.attributes.get("upstream_headers", {}),
            timeouts=limits,
            deadline=self._deadline(mono),
        )

    async def _complete(self, limits: AttemptTimeouts, mono: float) -> Reply:
        call, p = self._call, self._p
        assert call.payload is not None
        adapter = p.adapters[self.provider]
        embeddings = call.body is not None and call.body.operation == "embeddings"
        call_upstream = adapter.embed if embeddings else adapter.complete
        done = await call_upstream(
            call.payload,
            model=self.model,
            request_id=call.request_id,
            headers=call.attributes.get("upstream_headers", {}),
            timeouts=limits,
            deadline=self._deadline(mono),
        )
        mono = p.clock.monotonic()
        self._answer(mono)
        now = p.clock.now()
        if self._watch is None:  # nothing to wait for unless the verdict moved the breaker
            moved = self._settle(mono, now)
            if moved is not None:
                await p.breakers.publish(self.key)
                note_transition(call, moved)
        else:
            await self.end()
        rec = call.record
        rec.ts_first_byte = now
        rec.tokens_in = done.prompt_tokens or 0
        rec.tokens_out = done.completion_tokens or 0
        if p.guardrails.active:
            note_actions(rec, p.guardrails.apply(done.body), p.events)
        return Reply(200, {}, orjson.dumps(done.body))  # positional: no keyword dict

    async def _inject(self, injection: Injection, limits: AttemptTimeouts) -> AttemptTimeouts:
        """Apply a chaos injection: wait (latency, timeout) and/or raise its fault; returns the limits left."""
        call, p, provider = self._call, self._p, self.provider
        assert self.record is not None
        self.record.injected = True
        call.record.decisions.setdefault("chaos", []).append({"provider": provider, **injection.to_dict()})
        p.events.chaos_injected(injection.fault, provider)
        if injection.fault in ("latency", "timeout"):
            wait = injection.latency_s if injection.fault == "latency" else limits.first_byte_s
            await p.clock.sleep(min(wait, max(0.0, call.deadline - p.clock.monotonic())))
        if injection.fault != "latency":
            raise injected_error(provider, injection)
        if p.clock.monotonic() >= call.deadline:
            raise DeadlineReached(provider, "injected latency reached the request deadline")
        return p.limits.at(call.deadline, p.clock.monotonic())

    # -- how it ends -----------------------------------------------------------------------------------------
    def answered(self) -> float:
        """The provider answered (a JSON body, or a stream's head): its time to first byte, noted and returned.
        Raises :class:`RaceLost` when the other attempt of its race answered first."""
        return self._answer(self._p.clock.monotonic())

    def _answer(self, now: float) -> float:
        """:meth:`answered` at ``now`` (the clock's monotonic time)."""
        assert self.record is not None
        if self.race is not None and not self.race.claim(self):
            raise RaceLost(self.provider)
        self.record.status = 200
        self.record.duration_s = ttfb = now - self._t0
        key = f"{self.provider}/{self.model}"
        self._p.latency.observe(key, ttfb)
        self._p.ttft.observe(key, now, ttfb)
        self._late = self._stop_watch(now)
        return ttfb

    def failed(self, exc: UpstreamError, limits: AttemptTimeouts) -> UpstreamError:
        """The failure as recorded: ``exc``, or :class:`DeadlineReached` when the request deadline caused it."""
        failure = self._p.limits.deadline_or(exc, limits)
        if self.record is not None:
            self.record.outcome, self.record.status = failure.outcome, exc.status
        return failure

    async def end(self, failure: UpstreamError | None = None, *, cancelled: bool = False) -> None:
        """The one place an attempt lets go, once: the provider slot, then the verdict on the provider — or, when
        ``cancelled`` (the client left, the task was cancelled, the request ran out of time before the call), the
        breaker probe back without one."""
        if self._ended:
            return
        self._ended = True
        p = self._p
        if self.record is not None:
            self.record.duration_s = p.clock.monotonic() - self._t0
            if cancelled:
                self.record.outcome = "cancelled"
        if self._slot:
            p.shedder.release(self.provider)
        # Slow all the same (answered late, or ended without an answer past slow_call_s) and the timer did not
        # count it: it counts now.
        if self._late or (self._watch is not None and self._stop_watch(p.clock.monotonic())):
            self._late = False
            await self._note_slow()
        if cancelled:
            p.breakers.release(self.key)
        elif failure is not None:
            await self._blame(failure)
        else:
            p.budget.on_outcome(self.provider, True, p.clock.monotonic())
            moved = p.breakers.verdict(self.key, True, counted=self._slow)
            if moved is not None:
                await p.breakers.publish(self.key)
                note_transition(self._call, moved)
        if self._watch is not None and self._watch.cancelling():  # the slow-call timer stopped: let it finish
            await asyncio.wait((self._watch,))

    def _settle(self, mono: float, now: float) -> Transition | None:
        """:meth:`end` of an answered attempt without a slow-call timer (so not slow), at ``mono`` / ``now`` (the
        clock's monotonic and epoch time), without a coroutine: the slot, then the verdict. A transition it
        caused is returned, to be published."""
        if self._ended:
            return None
        self._ended = True
        p, provider = self._p, self.provider
        assert self.record is not None and self._slot
        self.record.duration_s = mono - self._t0
        p.shedder.release(provider)
        p.budget.on_outcome(provider, True, mono)
        return p.breakers.verdict(self.key, True, now=now)

    def _stop_watch(self, now: float) -> bool:
        """Stop the slow-call timer if it has not run; True when the call was slow all the same."""
        watch = self._watch
        if watch is None or self._slow or watch.cancelling():
            return False
        watch.cancel()
        return now - self._sent >= (self._p.slow_call_s or 0.0)

    async def _blame(self, failure: UpstreamError) -> None:
        p, provider = self._p, self.provider
        if isinstance(failure, DeadlineReached) or (
            isinstance(failure, UpstreamClientError) and not provider_refused(failure)
        ):
            p.breakers.release(self.key)  # the request's fault (or its deadline), not the provider's
            return
        if isinstance(failure, UpstreamQuotaExhausted):
            p.breakers.release(self.key)
            p.cooloffs.mark(provider, p.clock.monotonic())
            self._call.record.decisions.setdefault("quota_exhausted", []).append(provider)
            return
        p.budget.on_outcome(provider, False, p.clock.monotonic())
        note_transition(self._call, await p.breakers.record(self.key, False, counted=self._slow))
