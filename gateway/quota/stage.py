"""The quota stage: check before any provider is called, reconcile when the reply is complete.

Before: estimate the request's tokens (gateway/quota/estimate.py), one atomic check that reserves them (or a
429/403 raised at once, with headers). After: charge the real usage (``call.record.tokens_in/out``, written by the
router; a cut or cancelled stream has what was delivered) in place of the reservation, once, and release the
in-flight lease — when a JSON reply is ready, when a stream ends, fails or is cancelled, or when a later stage
raises. The settle is written to the store at that moment and its answer is not waited for
(:meth:`~gateway.quota.limiter.QuotaLimiter.release`): a limited request costs one round trip, its check.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

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
        try:
            reply = await next_(call)
        except BaseException:
            self._release(call, reservation, est)
            raise

        if reply.stream is None:
            # Released before the reply goes out, not after: the settle frees the reservation's concurrency lease,
            # and a client that sends its next request as soon as it has this answer must not find the lease still
            # held. The settle is written to the store now and its answer not waited for: this process's later
            # calls run after it on the store, and it reaches the store before the client has this reply.
            self._release(call, reservation, est)
            return reply

        async def done() -> None:
            self._release(call, reservation, est)

        return finish_with(call, reply, done)

    def _release(self, call: Call, reservation: Reservation, est: Estimate) -> None:
        actual = actual_charge(call.record.tokens_in, call.record.tokens_out, est)
        decided = call.record.decisions["quota"]
        decided["charged"] = actual
        decided["settled"] = True  # sent to a healthy store; its answer, when it comes, says whether it applied
        self._limiter.release(reservation, actual, partial(_note_settled, decided))


def _note_settled(decided: dict[str, Any], delta: int | None) -> None:
    decided["settled"] = delta is not None
