"""Stage: tell a consumer with the ``served_by`` permission which provider and upstream model answered.

Replies name the model the client asked for and nothing of the upstream (gateway/adapters/base.py,
``present``). Operators and trusted consumers may still need to see the routing decision: for a key with the
``served_by`` permission, a successful reply carries ``x-faultline-served-by: <provider>/<upstream model>``.
Everyone else learns it from nowhere; it is always in the request log, the span and the metrics.
"""

from __future__ import annotations

from gateway.call import Call, Handler, Reply

HEADER = "x-faultline-served-by"


class ServedByStage:
    async def __call__(self, call: Call, next_: Handler) -> Reply:
        reply = await next_(call)
        consumer, rec = call.consumer, call.record
        if consumer is not None and "served_by" in consumer.permissions and rec.provider and rec.attempts:
            reply.headers[HEADER] = f"{rec.provider}/{rec.attempts[-1].model}"
        return reply
