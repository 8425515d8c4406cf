"""The quota stage: check before any provider is called, reconcile when the reply is complete.

Before: estimate the request's tokens (gateway/quota/estimate.py), one atomic check that reserves them (or a
429/403 raised at once, with headers). After: charge the real usage (``call.record.tokens_in/out``, written by the
router; a cut or cancelled stream has what was delivered) in place of the reservation, once, and release the
in-flight lease — when a JSON reply is ready, when a stream ends, fails or is cancelled, or when a later stage
raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.call import Call, Handler, Reply, finish_with
from gateway.quota.estimate import Estimate, actual_charge, estimate
from gateway.quota.limiter import QuotaLimiter, Reservation
from gateway.quota.replies import ratelimit_headers, rejection

if TYPE_CHECKING:
    from gateway.config import Settings


class QuotaStage:
    def __init__(self, limiter: QuotaLimiter, settings: Settings) -> None:
        self._limiter = limiter
        self._settings = settings

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        consumer = call.consumer
        if consumer is None or call.payload is None:  # not a model call (e.g. /v1/models)
            return await next_(call)
        limits = self._settings.limits_for(consumer)
        if limits.unlimited:
            return await next_(call)
        est = estimate(call.payload, self._settings.quota)
        decision, reservation = await self._limiter.check(consumer.name, est.total, limits)
        call.record.decisions["quota"] = {"decision": decision.kind, "reserved": est.total}
        if limits.tpd is not None:  # the daily budget's use after this check (observability: budget remaining)
            call.record.decisions["quota"]["day_used"] = decision.day_used
        if reservation is None:
            model = call.payload.get("model")
            raise rejection(
                decision,
                limits,
                model=model if isinstance(model, str) else "this model",
                consumer=consumer.name,
                tokens=est.total,
                now_ms=self._limiter.now_ms(),
            )
        call.record.decisions["quota"]["backend"] = reservation.backend
        call.response_headers.update(ratelimit_headers(decision, limits))
        call.attributes["quota"] = reservation
        try:
            reply = await next_(call)
        except BaseException:
            await self._settle(call, reservation, est)
            raise

        if reply.stream is None:
            # Settled before the reply goes out, not after: the settle frees the reservation's concurrency lease,
            # and a client that sends its next request as soon as it has this answer (on this replica or another)
            # must not find the lease still held.
            await self._settle(call, reservation, est)
            return reply

        async def done() -> None:
            await self._settle(call, reservation, est)

        return finish_with(call, reply, done)

    async def _settle(self, call: Call, reservation: Reservation, est: Estimate) -> None:
        actual = actual_charge(call.record.tokens_in, call.record.tokens_out, est)
        delta = await self._limiter.settle(reservation, actual)
        call.record.decisions["quota"]["charged"] = actual
        call.record.decisions["quota"]["settled"] = delta is not None
