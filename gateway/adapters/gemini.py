"""Gemini (the Gemini API's ``/v1beta``): translate, call, classify, like the OpenAI-compatible adapters.

``POST {base_url}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` with the key in
``x-goog-api-key``. The translation itself is pure: requests in :mod:`gateway.adapters.gemini_request`,
responses, stream frames and errors in :mod:`gateway.adapters.gemini_response`. A Gemini stream has no
``[DONE]``: it is complete when a frame carried a finish reason and the body then ended; it ends, as OpenAI's
do, with a usage chunk built from the last ``usageMetadata``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.adapters import gemini_embed
from gateway.adapters.base import (
    AttemptTimeouts,
    ChunkStream,
    Completion,
    OpenAICompatibleAdapter,
    present,
    reply_id,
)
from gateway.adapters.bound import Bound
from gateway.adapters.gemini_request import TranslationError, to_gemini
from gateway.adapters.gemini_response import StreamTranslator, classify, to_completion
from gateway.adapters.upstreamerrors import (
    NotTranslatable,
    UpstreamError,
    UpstreamServerError,
    UpstreamStreamCut,
)
from gateway.clock import Clock
from gateway.transport import Transport, UpstreamResponse


class GeminiChunkStream(ChunkStream):
    def __init__(
        self,
        provider: str,
        resp: UpstreamResponse,
        idle_s: float,
        first_by: float,
        translator: StreamTranslator,
        *,
        model: str,
        cid: str,
    ) -> None:
        super().__init__(provider, resp, idle_s, first_by, model=model, cid=cid)
        self._tr = translator

    @property
    def ready(self) -> bool:
        """Never: a Gemini document at hand may translate into no chunk (a usage-only one), after which the stream
        would wait for the upstream's next read; so each chunk goes out as soon as it is made."""
        return False

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        first = True
        while True:
            data = await self._next(first)
            first = False
            if data is None:
                if not self._tr.finished:
                    raise UpstreamStreamCut(self._provider, "stream ended before a finish reason")
                tail = self._tr.finish()
                if tail is not None:
                    yield present(tail, self._model, self._cid)
                return
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamStreamCut(self._provider, "malformed stream event") from None
            if not isinstance(doc, dict):
                continue
            if "error" in doc:
                err = doc["error"] if isinstance(doc["error"], dict) else {"message": str(doc["error"])}
                raise UpstreamServerError(self._provider, f"error event mid-stream: {err.get('message', '')}")
            chunk = self._tr.frame(doc)
            if chunk is not None:
                yield present(chunk, self._model, self._cid)


class GeminiAdapter(OpenAICompatibleAdapter):
    """Speaks the Gemini API to ``base_url`` (…/v1beta) and OpenAI's chat completions to the router."""

    kind = "gemini"

    def __init__(
        self, name: str, base_url: str, transport: Transport, api_key: str | None = None, *, clock: Clock
    ) -> None:
        super().__init__(name, base_url, transport, None)
        self._base = base_url.rstrip("/")
        self._auth = {"x-goog-api-key": api_key} if api_key else {}
        self._clock = clock

    def _created(self) -> int:
        return int(self._clock.now())

    def _request(self, payload: dict[str, Any]) -> bytes:
        try:
            return orjson.dumps(to_gemini(payload))
        except TranslationError as exc:
            raise NotTranslatable(self.name, str(exc), status=400) from None

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
        url = f"{self._base}/models/{model}:generateContent"
        request = self._request(payload)
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._post(url, request, request_id, headers, timeouts, bound)
            doc = await self._read_json(resp, timeouts, bound)
        if not isinstance(doc, dict) or not ("candidates" in doc or "promptFeedback" in doc):
            raise UpstreamServerError(self.name, "response is not a GenerateContentResponse", status=resp.status)
        body = to_completion(doc, model=model, created=self._created())
        present(body, str(payload.get("model") or model), reply_id(request_id))
        u = body["usage"]
        return Completion(body, u.get("prompt_tokens"), u.get("completion_tokens"))

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
        """``:batchEmbedContents`` for one input or many (gateway/adapters/gemini_embed.py)."""
        try:
            body = orjson.dumps(gemini_embed.to_batch(payload, model))
        except TranslationError as exc:
            raise NotTranslatable(self.name, str(exc), status=400) from None
        url = f"{self._base}/models/{model}:batchEmbedContents"
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._post(url, body, request_id, headers, timeouts, bound)
            doc = await self._read_json(resp, timeouts, bound)
        out = gemini_embed.from_batch(doc, payload) if isinstance(doc, dict) else None
        if out is None:
            raise UpstreamServerError(self.name, "response is not a batchEmbedContents answer", status=resp.status)
        return Completion(out, out["usage"]["prompt_tokens"], 0)

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
        first_by = asyncio.get_running_loop().time() + timeouts.first_byte_s
        url = f"{self._base}/models/{model}:streamGenerateContent?alt=sse"
        request = self._request(payload)
        with Bound(timeouts.first_byte_s, deadline) as bound:
            resp = await self._post(url, request, request_id, headers, timeouts, bound)
        translator = StreamTranslator(model=model, created=self._created())
        requested, cid = str(payload.get("model") or model), reply_id(request_id)
        return GeminiChunkStream(self.name, resp, timeouts.idle_s, first_by, translator, model=requested, cid=cid)

    def classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> UpstreamError:
        return classify(self.name, status, raw)
