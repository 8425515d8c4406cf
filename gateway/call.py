"""The request as it travels the pipeline (:class:`Call`) and the answer that travels back (:class:`Reply`).

A stage is ``async (call, next) -> Reply``; see gateway/pipeline.py for the one ordered list of stages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.requestrecord import RequestRecord

if TYPE_CHECKING:
    from gateway.config import Consumer, ModelGroup
    from gateway.embeddings_schema import EmbeddingRequest
    from gateway.identity import Identity
    from gateway.schemas import ChatRequest


@dataclass(slots=True)
class Call:
    """Everything known about one client request. Stages fill it in, in pipeline order."""

    request_id: str
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    receive_body: Callable[[], Awaitable[bytes]]
    record: RequestRecord
    started: float  # clock.monotonic() at arrival
    deadline: float  # clock.monotonic() after which no attempt may run
    consumer: Consumer | None = None
    identity: Identity | None = None  # the key presented: its id, name, tags and own budget
    body: ChatRequest | EmbeddingRequest | None = None  # validated request
    group: ModelGroup | None = None  # the model group the requested model resolves to
    payload: dict[str, Any] | None = None  # the JSON object as sent, forwarded upstream
    response_headers: dict[str, str] = field(default_factory=dict)  # added to every reply, errors included
    span: Any = None  # the request's tracing span, when tracing is on
    query: str = ""  # the raw query string
    path_params: dict[str, str] = field(default_factory=dict)  # the route's ``{name}`` segments
    attributes: dict[str, Any] = field(default_factory=dict)  # stage-to-stage facts (e.g. the upstream trace headers)
    after_reply: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # see finish_with

    async def finish(self) -> None:
        """Run the work the stages deferred until the reply is out (:func:`finish_with`), innermost stage first,
        once. Every piece runs; then a cancellation (or another non-``Exception``) is raised first, else the
        first failure."""
        work, self.after_reply = self.after_reply, []
        failure: BaseException | None = None
        for done in work:
            try:
                await done()
            except BaseException as exc:
                if failure is None or (isinstance(failure, Exception) and not isinstance(exc, Exception)):
                    failure = exc
        if failure is not None:
            raise failure


@dataclass(slots=True)
class Reply:
    """A JSON answer (``body``) or an SSE stream (``stream``), with status and headers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    media_type: str = "application/json"


Handler = Callable[[Call], Awaitable[Reply]]


class Stage(Protocol):
    """``async def __call__``, or a plain one returning another stage's or handler's coroutine."""

    def __call__(self, call: Call, next_: Handler) -> Awaitable[Reply]: ...


def finish_with(call: Call, reply: Reply, done: Callable[[], Awaitable[None]]) -> Reply:
    """Run ``done`` once the reply is complete. A JSON reply is complete when its body is out: ``done`` joins
    ``call.after_reply``, which the edge runs after sending the body (gateway/asgi.py), so accounting and
    telemetry cost the client no latency. A stream is wrapped: ``done`` runs when it ends, fails or is cancelled
    by the client, or when it is closed before it started. ``return finish_with(call, reply, done)`` in a stage."""
    if reply.stream is None:
        call.after_reply.append(done)
    else:
        inner = reply.stream

        async def unstarted() -> None:
            try:
                await close_stream(inner)
            finally:
                await done()

        reply.stream = Guarded(_finishing(inner, done), if_unstarted=unstarted)
    return reply


async def close_stream(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class Guarded:
    """Iterates ``gen``, a generator wrapping another stream. An async generator closed before its first item
    runs no ``finally``, so nothing inside it would be closed or released (a client gone before the first byte,
    a reply never sent): ``aclose()`` then runs ``if_unstarted`` instead."""

    def __init__(self, gen: AsyncIterator[bytes], *, if_unstarted: Callable[[], Awaitable[None]]) -> None:
        self._gen, self._if_unstarted = gen, if_unstarted
        self._started = self._closed = False

    def __aiter__(self) -> Guarded:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        self._started = True
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_stream(self._gen)
        if not self._started:
            await self._if_unstarted()


async def _finishing(stream: AsyncIterator[bytes], done: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        try:
            await close_stream(stream)
        finally:
            await done()
