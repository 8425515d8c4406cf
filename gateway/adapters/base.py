"""The OpenAI-compatible adapter both providers share: translate, call, classify. Nothing else.

No retries, no policy, no quotas: the router decides what to do with the classified errors
(gateway/adapters/upstreamerrors.py) and passes the time limits of each attempt in :class:`AttemptTimeouts`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.adapters.bound import Bound
from gateway.adapters.readlimit import ReadLimit
from gateway.adapters.sse import EventParser
from gateway.adapters.upstreamerrors import (
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamStreamCut,
    UpstreamStreamTimeout,
    UpstreamTimeout,
)
from gateway.transport import ConnectFailed, ConnectionLost, Transport, UpstreamResponse


@dataclass(frozen=True, slots=True)
class AttemptTimeouts:
    connect_s: float
    first_byte_s: float
    idle_s: float


# Keys that name or fingerprint the upstream: never passed to the client (see docs/PROVIDERS.md).
_UPSTREAM_KEYS = ("system_fingerprint", "service_tier", "prompt_logprobs", "kv_transfer_params")


def present(doc: dict[str, Any], model: str, cid: str) -> dict[str, Any]:
    """A completion or chunk in the client's terms: the model it asked for, the gateway's id, and nothing that
    names or fingerprints the upstream (its fingerprint, service tier, vLLM's ``stop_reason`` and prompt
    logprobs)."""
    doc["id"] = cid
    doc["model"] = model
    for k in _UPSTREAM_KEYS:
        doc.pop(k, None)
    for choice in doc.get("choices") or ():
        choice.pop("stop_reason", None)
    return doc


def reply_id(request_id: str) -> str:
    """The ``id`` of every reply: the gateway's request id, whichever upstream answered."""
    return f"chatcmpl-{request_id}"


@dataclass(slots=True)
class Completion:
    body: dict[str, Any]
    prompt_tokens: int | None
    completion_tokens: int | None


class ChunkStream:
    """Parsed chunks of an upstream stream. Ends on ``[DONE]``; anything else that ends it is an error.

    The first chunk is due by ``first_by`` (event-loop time: the attempt's first-byte limit, counted from the
    request, because an upstream such as vLLM sends its response headers at once and its first chunk only with
    the first token); later chunks within ``idle_s`` of the previous one. One timer per stream keeps both limits
    (gateway/adapters/readlimit.py); events an upstream read completed together are handed out without a wait.
    """

    def __init__(
        self,
        provider: str,
        resp: UpstreamResponse,
        idle_s: float,
        first_by: float | None = None,
        *,
        model: str = "",
        cid: str = "",
    ) -> None:
        self._provider = provider
        self._resp = resp
        self._idle_s = idle_s
        self._first_by = first_by
        self._bytes = resp.iter_bytes()
        self._parser = EventParser()
        self._pending: deque[bytes] = deque()  # events parsed, not yet handed out
        self._ended = False  # the upstream body ended
        self._limit = ReadLimit()
        self._model, self._cid = model, cid  # what each chunk says: the requested model, the gateway's id

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks()

    @property
    def ready(self) -> bool:
        """The next chunk, or the stream's end, can be had without waiting: the next event at hand is an object or
        ``[DONE]``. An event the stream skips (a JSON value that is not an object) does not count: after it the
        stream would wait for the upstream's next read, and what the relay holds must go out before that wait."""
        pending = self._pending
        return bool(pending) and (pending[0][:1] == b"{" or pending[0] == b"[DONE]")

    async def _next(self, first: bool) -> bytes | None:
        """The next event's data within its time limit; None when the upstream body ended."""
        pending = self._pending
        if pending:
            return pending.popleft()
        limit = self._limit
        due = self._first_by if first and self._first_by is not None else limit.time() + self._idle_s
        while not pending:
            if self._ended:
                return None
            raw = await self._read(due, first)
            if raw is None:
                self._ended = True
                return self._parser.tail()
            pending.extend(self._parser.feed(raw))
        return pending.popleft()

    async def _read(self, due: float, first: bool) -> bytes | None:
        """The upstream's next bytes, by ``due``; None when its body ended."""
        limit = self._limit
        limit.begin(due)
        expired = False
        try:
            try:
                return await anext(self._bytes)
            finally:
                expired = limit.end()
        except StopAsyncIteration:
            return None
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not expired:
                raise
            if first:
                raise UpstreamTimeout(self._provider, "no first chunk within the first-byte limit") from None
            raise UpstreamStreamTimeout(self._provider, f"no chunk for {self._idle_s:g}s") from None
        except ConnectionLost as exc:
            raise UpstreamStreamCut(self._provider, f"connection lost mid-stream: {exc}") from None

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        first = self._first_by is not None
        pending = self._pending
        while True:
            data = pending.popleft() if pending else await self._next(first)
            if data is None:
                raise UpstreamStreamCut(self._provider, "stream ended without [DONE]")
            first = False
            if data == b"[DONE]":
                return
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamStreamCut(self._provider, "malformed stream event") from None
            if isinstance(chunk, dict) and "error" in chunk:
                err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                raise UpstreamServerError(self._provider, f"error event mid-stream: {err.get('message', '')}")
            if isinstance(chunk, dict):
                yield present(chunk, self._model, self._cid)

    async def aclose(self) -> None:
        """Release the upstream response. The transport's byte generator is closed here, not left to the garbage
        collector (whose hook would schedule its ``aclose`` as a task of its own)."""
        self._limit.close()
        try:
            aclose = getattr(self._bytes, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._resp.aclose()


class OpenAICompatibleAdapter:
    """Speaks OpenAI's chat completions API to ``base_url`` (…/v1)."""

    kind = "openai"

    def __init__(self, name: str, base_url: str, transport: Transport, api_key: str | None = None) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._embeddings_url = base_url.rstrip("/") + "/embeddings"
        self._models_url = base_url.rstrip("/") + "/models"
        self._transport = transport
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}

    def credentials(self) -> dict[str, str]:
        """The headers that authenticate a call to this upstream (for its health checks)."""
        return dict(self._auth)

    def _headers(self, request_id: str, extra: Mapping[str, str]) -> dict[str, str]:
        return {"content-type": "application/json", "x-request-id": request_id, **self._auth, **extra}

    def _send(
        self,
        payload: dict[str, Any],
        model: str,
        request_id: str,
        headers: Mapping[str, str],
        t: AttemptTimeouts,
        bound: Bound,
        url: str | None = None,
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        """The POST of ``payload`` (``model`` replaced): :meth:`_post`'s coroutine itself, no frame of its own."""
        body = orjson.dumps({**payload, "model": model})
        return self._post(url or self._url, body, request_id, headers, t, bound)

    async def _post(
        self, url: str, body: bytes, request_id: str, headers: Mapping[str, str], t: AttemptTimeouts, bound: Bound
    ) -> UpstreamResponse:
        """POST within the first-byte limit (``bound``'s first wait); an error status becomes the adapter's
        exception (``classify``), its body read within ``idle_s``."""
        try:
            resp = await self._transport.send(
                url, self._headers(request_id, headers), body, connect_timeout=t.connect_s
            )
        except ConnectFailed as exc:
            raise UpstreamConnectError(self.name, str(exc)) from None
        except asyncio.CancelledError:
            if not bound.expired():
                raise
            raise bound.deadline_error(self.name) or UpstreamTimeout(
                self.name, f"no response within {t.first_byte_s:g}s"
            ) from None
        if resp.status >= 400:
            bound.limit(t.idle_s)
            try:
                raw = await resp.read()
            except ConnectionLost:
                raw = b""
            except asyncio.CancelledError:
                if not bound.expired():
                    raise
                if (late := bound.deadline_error(self.name)) is not None:
                    raise late from None
                raw = b""
            raise self.classify(resp.status, resp.headers, raw)
        return resp

    async def complete(
        self,
        payload: dict[str, Any],
        *,
        model: str,
        request_id: str,
        headers: Mapping[str, str],
        timeouts: AttemptTimeouts,
        deadline: float | None = None,
    ) -> Completion:
        """``deadline``: event-loop time at which the request deadline ends the call (:class:`DeadlineReached`)."""
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._send(payload, model, request_id, headers, timeouts, bound)
            body = await self._read_json(resp, timeouts, bound)
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamServerError(self.name, "response is not a chat completion", status=resp.status)
        present(body, str(payload.get("model") or model), reply_id(request_id))
        usage = body.get("usage") or {}
        return Completion(body, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    async def _read_json(self, resp: UpstreamResponse, t: AttemptTimeouts, bound: Bound) -> Any:
        """The whole body as JSON, within the first-byte limit (counted from the response head)."""
        bound.limit(t.first_byte_s)
        try:
            raw = await resp.read()
        except asyncio.CancelledError:
            if not bound.expired():
                raise
            if (late := bound.deadline_error(self.name)) is not None:
                raise late from None
            await resp.aclose()
            raise UpstreamTimeout(self.name, "response body did not arrive in time") from None
        except ConnectionLost as exc:
            raise UpstreamStreamCut(self.name, f"connection lost reading the body: {exc}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamServerError(self.name, "response is not JSON", status=resp.status) from None

    async def embed(
        self,
        payload: dict[str, Any],
        *,
        model: str,
        request_id: str,
        headers: Mapping[str, str],
        timeouts: AttemptTimeouts,
        deadline: float | None = None,
    ) -> Completion:
        """``POST {base_url}/embeddings``: the body as sent, ``model`` replaced; the reply names the requested model."""
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._send(payload, model, request_id, headers, timeouts, bound, url=self._embeddings_url)
            body = await self._read_json(resp, timeouts, bound)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise UpstreamServerError(self.name, "response is not an embeddings list", status=resp.status)
        body["model"] = str(payload.get("model") or model)
        usage = body.get("usage") or {}
        return Completion(body, usage.get("prompt_tokens"), 0)

    async def open_stream(
        self,
        payload: dict[str, Any],
        *,
        model: str,
        request_id: str,
        headers: Mapping[str, str],
        timeouts: AttemptTimeouts,
        deadline: float | None = None,
    ) -> ChunkStream:
        """The stream, once its head arrived (within the first-byte limit and ``deadline``); its chunks are bounded
        by :class:`ChunkStream` and the router's relay."""
        # Always ask for usage: accounting needs it; the router drops the chunk if the client did not ask.
        upstream = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        first_by = asyncio.get_running_loop().time() + timeouts.first_byte_s
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._send(upstream, model, request_id, headers, timeouts, bound)
        requested = str(payload.get("model") or model)
        return ChunkStream(self.name, resp, timeouts.idle_s, first_by, model=requested, cid=reply_id(request_id))

    def classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> UpstreamError:
        message, code, etype = _error_fields(raw)
        if status == 429:
            if code == "insufficient_quota" or etype == "insufficient_quota":
                return UpstreamQuotaExhausted(self.name, message or "insufficient quota", status=status)
            return UpstreamRateLimited(self.name, message or "rate limited", retry_after=retry_after(headers))
        if status >= 500:
            return UpstreamServerError(self.name, message or f"HTTP {status}", status=status)
        return UpstreamClientError(self.name, message or f"HTTP {status}", status=status, body=raw)


def _error_fields(raw: bytes) -> tuple[str, str | None, str | None]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace"), None, None
    if not isinstance(doc, dict):
        return "", None, None
    err = doc.get("error", doc)  # OpenAI and new vLLM nest it; old vLLM is flat {"object": "error", ...}
    if not isinstance(err, dict):
        return str(err), None, None
    code = err.get("code")
    return str(err.get("message") or ""), (str(code) if code is not None else None), err.get("type")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds), as OpenAI's SDK reads them."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None
