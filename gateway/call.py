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
    telemetry cost the client no latency. A stream runs ``done`` when it ends, fails or is cancelled by the
    client, or when it is closed before it started: the :class:`Guarded` stream an inner stage returned takes it
    on (no wrapping generator per stage, so no extra frames per chunk), any other stream is guarded first.
    ``return finish_with(call, reply, done)`` in a stage."""
    stream = reply.stream
    if stream is None:
        call.after_reply.append(done)
        return reply
    if not isinstance(stream, Guarded) or not stream.finish_with(done):
        guarded = Guarded(stream, if_unstarted=_nothing)
        guarded.finish_with(done)
        reply.stream = guarded
    return reply


async def _nothing() -> None:
    return None


async def close_stream(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class Guarded:
    """Iterates ``gen``, a generator wrapping another stream. An async generator closed before its first item
    runs no ``finally``, so nothing inside it would be closed or released (a client gone before the first byte,
    a reply never sent): ``aclose()`` then runs ``if_unstarted`` instead.

    The work :meth:`finish_with` hands it runs once ``gen`` is over, in the order handed (innermost stage first),
    each piece in the ``finally`` of the one before: when ``gen`` ends or fails (the exception goes on after the
    work), or when the stream is closed (after ``gen``'s own ``finally``, or after ``if_unstarted``)."""

    __slots__ = ("_closed", "_finishers", "_gen", "_if_unstarted", "_started")

    def __init__(self, gen: AsyncIterator[bytes], *, if_unstarted: Callable[[], Awaitable[None]]) -> None:
        self._gen, self._if_unstarted = gen, if_unstarted
        self._started = self._closed = False
        self._finishers: list[Callable[[], Awaitable[None]]] = []

    def __aiter__(self) -> Guarded:
        return self

    def finish_with(self, done: Callable[[], Awaitable[None]]) -> bool:
        """Run ``done`` once the stream is over; False (nothing taken on) when it has started or been closed."""
        if self._started or self._closed:
            return False
        self._finishers.append(done)
        return True

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        self._started = True
        if not self._finishers:
            return await self._gen.__anext__()
        try:
            return await self._gen.__anext__()
        except BaseException:  # ended (StopAsyncIteration), failed or cancelled: ``gen`` is over
            await self._finish()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await close_stream(self._gen)
            if not self._started:
                await self._if_unstarted()
        finally:
            await self._finish()

    async def _finish(self) -> None:
        work, self._finishers = self._finishers, []
        if work:
            await _in_turn(work)


async def _in_turn(work: list[Callable[[], Awaitable[None]]]) -> None:
    """Each piece of ``work`` in the ``finally`` of the one before (as nested wrapping generators ran them)."""
    try:
        await work[0]()
    finally:
        if len(work) > 1:
            await _in_turn(work[1:])
