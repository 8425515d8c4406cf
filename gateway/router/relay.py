"""Relaying an upstream stream to the client, once its first chunk has arrived.

* The stream's head (role-only chunks, up to the first content, finish or usage chunk) is awaited inside the
  attempt and held back, so a stream that fails before any content is an ordinary (retryable) attempt failure;
  once a chunk is sent to the client nothing is retried.
* A break or stall after bytes reached the client ends the stream with an SSE ``data: {"error": {...}}`` event
  in OpenAI's shape and no ``[DONE]``; the tokens delivered so far stay accounted in ``call.record``. So does the
  request deadline: a stream still running when it passes is ended the same way (no verdict on the provider).
* The frames of chunks that arrived together (one upstream read brought their events) go to the client together,
  as one body part: the bytes are the same, in fewer sends. The head goes out as soon as it is read, a chunk
  whose next one is still to come at once, and ``[DONE]`` with the last chunks.
* Guardrails apply chunk by chunk (gateway/router/guardrails.py keeps the tail across chunk boundaries).
* At the end (done, failed or cancelled by the client) the relay closes the upstream stream and ends the attempt
  (``Attempt.end`` in gateway/router/attempt.py: the provider slot freed; the breaker and the retry budget learn
  the outcome of a stream that finished or failed, while a cancelled one gives no verdict).

The relay knows the attempt only through :class:`RelayedAttempt`, and the router not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from gateway.adapters.base import AttemptTimeouts, ChunkStream
from gateway.adapters.sse import DONE, frame
from gateway.adapters.upstreamerrors import UpstreamError
from gateway.call import Call, Guarded, Reply
from gateway.clock import Clock
from gateway.observability.events import GuardrailEvents
from gateway.router.client_errors import client_error
from gateway.router.deadline import DeadlineReached
from gateway.router.guardrails import Guardrails, StreamGuard, note_actions

_MAX_HEAD = 8  # chunks held back at most while waiting for the first content


class RelayedAttempt(Protocol):
    """What the relay needs of the attempt whose stream it relays (gateway/router/attempt.py)."""

    @property
    def provider(self) -> str: ...

    def answered(self) -> float: ...

    def failed(self, exc: UpstreamError, limits: AttemptTimeouts) -> UpstreamError: ...

    async def end(self, failure: UpstreamError | None = None, *, cancelled: bool = False) -> None: ...


class Relay:
    def __init__(self, clock: Clock, guardrails: Guardrails, events: GuardrailEvents) -> None:
        self._clock = clock
        self._guardrails = guardrails
        self._events = events

    async def start(self, call: Call, attempt: RelayedAttempt, stream: ChunkStream, limits: AttemptTimeouts) -> Reply:
        """Read the stream's head (within the deadline) and return the reply relaying the rest. From then on the
        relay ends ``attempt``; when the head fails, the caller does."""
        it = aiter(stream)
        head: list[dict[str, Any]] = []
        try:  # hold back role-only chunks: until content arrives, a failure is still retryable
            while len(head) < _MAX_HEAD:
                chunk = await self._read(it, call.deadline, limits.idle_s, attempt.provider)
                if chunk is None:
                    break
                head.append(chunk)
                if _has_content(chunk) or _finished(chunk) or chunk.get("usage"):
                    break
            attempt.answered()  # may raise: a hedge's other attempt answered first
        except BaseException:
            await stream.aclose()
            raise
        body = self._run(call, attempt, stream, it, head, limits)

        async def unstarted() -> None:  # the reply was never read (sending its head failed)
            try:
                await stream.aclose()
            finally:
                await attempt.end(cancelled=True)

        return Reply(stream=Guarded(body, if_unstarted=unstarted), media_type="text/event-stream")

    # long: the relay loop, reading (head, then the stream within the deadline), sending the frames of the chunks at
    # hand together, then how the stream ended; splitting it would scatter that order across helpers.
    async def _run(
        self,
        call: Call,
        attempt: RelayedAttempt,
        stream: ChunkStream,
        it: AsyncIterator[dict[str, Any]],
        head: list[dict[str, Any]],
        limits: AttemptTimeouts,
    ) -> AsyncIterator[bytes]:
        clock = self._clock
        tally = _Tally(call, {} if self._guardrails.active else None)
        failure: UpstreamError | None = None
        finished = False
        out = tally.out  # frames not sent yet: those of the chunks at hand go out together
        sent = False  # the head went out (at once, without the chunks that came with it: time to first token)
        deadline, idle_s, provider = call.deadline, limits.idle_s, attempt.provider
        safe_until = deadline - idle_s  # until then the adapter's idle limit ends every read before the deadline
        try:
            while True:
                if head:  # the held-back head first
                    chunk: dict[str, Any] | None = head.pop(0)
                elif clock.monotonic() <= safe_until:
                    chunk = await anext(it, None)
                else:
                    chunk = await self._read(it, deadline, idle_s, provider)
                if chunk is None or self._take(call, chunk, tally) is not None:
                    break
                if out and not head and (not sent or not stream.ready):  # the head, or the next is to be waited for
                    yield _joined(out)
                    out.clear()
                    sent = True
            if tally.guards:
                out.extend(frame(tail) for tail in self._flush(tally.guards, tally.last))
            out.append(DONE)  # with the last chunks, in one body part
            finished = True  # complete: a client that leaves once it has [DONE] (as the SDKs do) cancelled nothing
            yield _joined(out)
        except UpstreamError as exc:
            if out:  # the chunks before the failure go out first
                yield _joined(out)
            failure = attempt.failed(exc, limits)
            call.record.error_type = failure.outcome  # the stream ends in an error: its outcome (telemetry) is error
            yield frame(client_error(failure).body())
        finally:
            try:
                await stream.aclose()
            finally:
                if failure is not None or finished:
                    await attempt.end(failure)
                else:  # the client went away: no verdict on the provider
                    await attempt.end(cancelled=True)

    def _take(self, call: Call, chunk: dict[str, Any], tally: _Tally) -> str | None:
        """One chunk's way, in order: first byte, usage, guardrails, tokens, its frame (into ``tally.out``). Returns
        why the stream stops here (a guardrail's finish reason), else None."""
        rec = call.record
        if rec.ts_first_byte is None:
            rec.ts_first_byte = self._clock.now()
        usage = chunk.get("usage")
        if usage and not chunk.get("choices"):
            rec.tokens_in = int(usage.get("prompt_tokens") or 0)
            rec.tokens_out = int(usage.get("completion_tokens") or 0)
            if tally.include_usage:
                tally.out.append(frame(chunk))
            return None
        if not tally.include_usage:
            chunk.pop("usage", None)
        stop = self._guard(call, chunk, tally.guards) if tally.guards is not None else None
        if _has_content(chunk):
            tally.delivered += 1
            rec.tokens_out = max(rec.tokens_out, tally.delivered)
        tally.last = chunk
        tally.out.append(frame(chunk))
        return stop

    async def _read(
        self, it: AsyncIterator[dict[str, Any]], deadline: float, idle_s: float, provider: str
    ) -> dict[str, Any] | None:
        """The next chunk, within the request deadline (the adapter bounds each read by ``idle_s`` already)."""
        left = deadline - self._clock.monotonic()
        if left >= idle_s:  # the idle limit ends this read before the deadline: no timer of our own
            return await anext(it, None)
        if left <= 0:
            raise DeadlineReached(provider, "the request deadline passed mid-stream")
        bound = asyncio.timeout(left)
        try:
            async with bound:
                return await anext(it, None)
        except TimeoutError:
            if not bound.expired():
                raise
            raise DeadlineReached(provider, "the request deadline passed mid-stream") from None

    def _guard(self, call: Call, chunk: dict[str, Any], guards: dict[int, StreamGuard]) -> str | None:
        rails = self._guardrails
        before = dict(rails.counts)
        stop = None
        for choice in chunk.get("choices") or ():
            guard = guards.setdefault(int(choice.get("index") or 0), rails.stream())
            delta = choice.get("delta") or {}
            content = delta.get("content")
            text, why = guard.feed(content) if isinstance(content, str) else ("", None)
            if choice.get("finish_reason") and why is None:
                more, why = guard.flush()
                text += more
            if isinstance(content, str) or text:
                delta["content"] = text
                choice["delta"] = delta
            if why is not None:
                choice["finish_reason"] = why
                stop = why
        note_actions(call.record, [k for k, v in rails.counts.items() if v != before.get(k, 0)], self._events)
        return stop

    def _flush(self, guards: dict[int, StreamGuard], last: dict[str, Any]) -> list[dict[str, Any]]:
        """Held-back text of a stream that ended without a finish_reason chunk."""
        out = []
        for index, guard in guards.items():
            if guard.stopped is not None:
                continue
            text, why = guard.flush()
            if text or why:
                choice = {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": why}
                out.append(
                    {k: last[k] for k in ("id", "object", "created", "model") if k in last} | {"choices": [choice]}
                )
        return out


class _Tally:
    """What the relay keeps of one stream between its chunks."""

    __slots__ = ("delivered", "guards", "include_usage", "last", "out")

    def __init__(self, call: Call, guards: dict[int, StreamGuard] | None) -> None:
        self.include_usage = call.body.include_usage if call.body is not None else False
        self.guards = guards
        self.delivered = 0  # chunks with content: the output tokens counted when no usage comes
        self.last: dict[str, Any] = {}  # the last chunk relayed (its id, model... for a flushed tail)
        self.out: list[bytes] = []


def _joined(frames: list[bytes]) -> bytes:
    return frames[0] if len(frames) == 1 else b"".join(frames)


def _finished(chunk: dict[str, Any]) -> bool:
    return any(c.get("finish_reason") for c in chunk.get("choices") or ())


def _has_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False
