"""Stage: ``Idempotency-Key`` (the semantics of Stripe's API and of the IETF draft), after parse, before quota.

* The first request with a key runs; its answer is kept for ``idempotency.ttl_s`` (24 h), per consumer.
* A retry with the same key and the same request (the SHA-256 of method, path and the canonical JSON body) gets
  the same status and body, a completed stream replayed as SSE, with ``Idempotent-Replayed: true``: no upstream
  call, no quota or budget charge.
* The same key with another request: 422 ``idempotency_key_reused``.
* A retry while the first still runs: 409 ``idempotency_in_progress`` with ``Retry-After``.

Kept: every answer, errors included (as Stripe: a new attempt takes a new key), except a 429 (a rate limit says
"later", so the key is released for the retry), a stream cut or left before its end, a request the client left,
and an answer larger than ``idempotency.max_response_bytes``: those release the key, and a retry runs again. The
answer is recorded before it reaches the client (a JSON body before it is sent, a stream before its
``[DONE]``), so a client retrying the moment it has it is replayed, never told 409. The state store failing:
the request runs without the key (logged and counted), as if no key were sent. Every call is bounded by the state
store's one bound (``state.timeout_s``, gateway/store/) and counts for its health; during a declared outage no
call is made and the request runs without the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

import orjson
from redis.exceptions import RedisError

from gateway.adapters.sse import DONE
from gateway.call import Call, Handler, Reply
from gateway.errors import GatewayError, IdempotencyConflict, IdempotencyMismatch, InvalidRequest
from gateway.idempotency.claims import IdempotencyStore
from gateway.settings.idempotency import IdempotencySettings
from gateway.store.statestore import StateStore, StoreDown

HEADER = "idempotency-key"
REPLAYED = {"idempotent-replayed": "true"}


class IdempotencyEvents(Protocol):
    def store_error(self, op: str, error: str) -> None: ...


def fingerprint(call: Call) -> str:
    body = orjson.dumps(call.payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{call.method} {call.path}\n".encode() + body).hexdigest()


async def replay_stream(body: bytes) -> AsyncIterator[bytes]:
    """The kept SSE bytes, one event per chunk, as they were sent."""
    for event in body.split(b"\n\n"):
        if event:
            yield event + b"\n\n"


class IdempotencyStage:
    def __init__(
        self,
        store: IdempotencyStore,
        settings: IdempotencySettings,
        *,
        state: StateStore,
        deadline_s: float,
        events: IdempotencyEvents,
    ) -> None:
        self._store = store
        self._state = state
        self._s = settings
        self._claim_ms = int((deadline_s + settings.running_ttl_s) * 1000)
        self._ttl_ms = int(settings.ttl_s * 1000)
        self._events = events

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        raw = call.headers.get(HEADER)
        if raw is None or call.consumer is None or call.payload is None:
            return await next_(call)
        key = raw.strip()
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidRequest("Idempotency-Key must be 1 to 255 printable characters.", param="idempotency-key")
        record_key = self._store.key(call.consumer.name, key)
        fp = fingerprint(call)
        decision: dict[str, object] = {}
        call.record.decisions["idempotency"] = decision
        try:
            if not self._state.usable:  # down, or a call of this request failed: the request runs without the key
                raise StoreDown("the state store is down")
            async with self._state.bounded("idempotency_claim"):
                claim = await self._store.claim(record_key, fp, self._claim_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            if not isinstance(exc, StoreDown):
                self._events.store_error("idempotency_claim", type(exc).__name__)
            decision["result"] = "unchecked"
            return await next_(call)
        decision["result"] = claim.kind
        if claim.kind == "mismatch":
            raise IdempotencyMismatch(
                "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
                param="idempotency-key",
            )
        if claim.kind == "running":
            retry_s = max(1, -(-claim.retry_ms // 1000)) if claim.retry_ms < 5000 else 1
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is still in progress. Retry once it has finished.",
                headers={"retry-after": str(retry_s)},
            )
        if claim.kind == "done":
            decision["replayed"] = True
            call.response_headers.update(REPLAYED)
            if claim.stream:
                return Reply(status=claim.status, headers=dict(REPLAYED), stream=replay_stream(claim.body))
            return Reply(status=claim.status, headers=dict(REPLAYED), body=claim.body)
        return await self._first(call, next_, record_key, fp)

    async def _first(self, call: Call, next_: Handler, record_key: str, fp: str) -> Reply:
        try:
            reply = await next_(call)
        except GatewayError as exc:
            if exc.status == 429:
                await self._release(record_key, fp)
            else:
                await self._keep(record_key, fp, exc.status, False, exc.to_json())
            raise
        except BaseException:
            await self._release(record_key, fp)
            raise
        if reply.stream is not None:
            reply.stream = self._recording(reply.stream, record_key, fp, reply.status)
            return reply
        if reply.status == 429 or reply.body is None:
            await self._release(record_key, fp)
        else:
            await self._keep(record_key, fp, reply.status, False, reply.body)
        return reply

    async def _recording(
        self, stream: AsyncIterator[bytes], record_key: str, fp: str, status: int
    ) -> AsyncIterator[bytes]:
        parts: list[bytes] = []
        size = 0
        kept = False
        try:
            async for chunk in stream:
                size += len(chunk)
                if size <= self._s.max_response_bytes:
                    parts.append(chunk)
                    if chunk.endswith(DONE) and not _failed(parts):  # kept before the client has the end of it
                        kept = await self._keep(record_key, fp, status, True, b"".join(parts))
                yield chunk
        finally:
            if not kept:
                await self._release(record_key, fp)

    async def _keep(self, record_key: str, fp: str, status: int, stream: bool, body: bytes) -> bool:
        if len(body) > self._s.max_response_bytes:
            await self._release(record_key, fp)
            return False
        if not self._state.usable:  # a call of this request failed: the claim expires by itself
            return False
        try:
            async with self._state.bounded("idempotency_finish"):
                return await self._store.finish(record_key, fp, status, stream, body, self._ttl_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            self._events.store_error("idempotency_finish", type(exc).__name__)
            return False

    async def _release(self, record_key: str, fp: str) -> None:
        if not self._state.usable:  # the claim then expires by itself
            return
        try:
            async with self._state.bounded("idempotency_release"):
                await self._store.release(record_key, fp)
        except (RedisError, OSError, TimeoutError) as exc:  # the claim then expires by itself
            self._events.store_error("idempotency_release", type(exc).__name__)


def _failed(parts: list[bytes]) -> bool:
    """A stream that carried an error event is not a completed answer."""
    return any(p.startswith(b'data: {"error"') for p in parts)
