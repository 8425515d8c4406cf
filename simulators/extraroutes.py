"""Routes beside chat completions: Gemini's ``/v1beta`` methods and embeddings (OpenAI/vLLM and Gemini).

Generation goes through :meth:`SimulatorApp.generate` like a chat completion, so Gemini requests meet the same
decision core (faults, rate limits, budgets), capacity model and latency draws; only the wire shape differs
(:class:`Render`). Embeddings are decided the same way and answered after their prefill time (TTFT draw plus
prompt tokens x prefill time per token, scaled by the load factor), with vectors from
:mod:`simulators.embeddings`.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from simulators import embeddings as emb
from simulators import gemini_wire
from simulators.asgitypes import JSON_HEADER, SSE_HEADERS, Receive, Scope, Send, read_body, send_json
from simulators.backend import Engine
from simulators.decide import Decision, Request
from simulators.failures import ErrorInfo
from simulators.gemini_tools import GeminiToolRender, pick_function


class StreamChunker(Protocol):
    def role(self) -> bytes: ...
    def token(self, text: str) -> bytes: ...
    def end(self, reason: str, prompt: int, completion: int) -> bytes: ...
    def error(self, body: dict[str, Any]) -> bytes: ...


class SimulatorApp(Protocol):
    """What these handlers use of the simulator app (simulators/simulator.py)."""

    engine: Engine

    async def error(
        self,
        send: Send,
        info: ErrorInfo,
        status: int | None = None,
        headers: list[tuple[bytes, bytes]] = ...,
    ) -> None: ...

    def ids(self, d: Decision) -> list[tuple[bytes, bytes]]: ...

    async def generate(self, req: Request, out: Render, receive: Receive, send: Send) -> None: ...

    async def fail(self, d: Decision, info: ErrorInfo, receive: Receive, send: Send) -> None: ...


class Render(Protocol):
    """How one generation goes on the wire: a JSON body, or a stream of chunks."""

    stream: bool

    def body(self, rid: str, created: int, model: str, content: str, finish: str, prompt: int, n: int) -> bytes: ...
    def chunker(self, rid: str, created: int, model: str, prompt: int) -> StreamChunker: ...
    def prepare(self, d: Decision) -> None: ...


async def _payload(app: SimulatorApp, receive: Receive, send: Send) -> tuple[bool, Any]:
    try:
        return True, orjson.loads(await read_body(receive))
    except orjson.JSONDecodeError:
        await app.error(send, ErrorInfo(kind="invalid_request", detail="Invalid JSON payload received."))
        return False, None


async def handle_gemini(app: SimulatorApp, scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    p = app.engine.profile
    served = p.served_models or [p.model]
    rest = path[1:].partition("/")[2]
    if method == "GET" and rest == "models" and not app.engine.health_ok():
        return await app.error(send, ErrorInfo(kind="overloaded"))  # a full outage: the list fails too
    if method == "GET" and rest == "models":
        return await send_json(send, 200, gemini_wire.models(served, p.max_model_len))
    if method == "GET" and rest.startswith("models/") and ":" not in rest:
        model = rest.removeprefix("models/")
        if p.served_models and model not in p.served_models:
            return await app.error(send, ErrorInfo(kind="model_not_found", model=model))
        return await send_json(send, 200, orjson.dumps(gemini_wire.model_card(model, p.max_model_len)))
    target = gemini_wire.route(path)
    if target is None or method != "POST":
        return await app.error(send, ErrorInfo(kind="not_found", detail=f"Method not found: {method} {path}"))
    model, verb = target
    ok, payload = await _payload(app, receive, send)
    if not ok:
        return None
    key = gemini_wire.api_key(scope)
    if verb in ("embedContent", "batchEmbedContents"):
        items, problem = gemini_wire.embed_texts(payload, verb == "batchEmbedContents", model)
        if items is None:
            return await app.error(send, ErrorInfo(kind="invalid_request", detail=problem))
        inputs = [(text, emb.tokens(text), dim) for text, dim in items]

        def render(vectors: list[list[float]]) -> bytes:
            return gemini_wire.embeddings(vectors, verb == "batchEmbedContents")

        return await embed(app, model, key, inputs, render, receive, send)
    messages, limit, problem = gemini_wire.parse_generate(payload)
    if messages is None:
        return await app.error(send, ErrorInfo(kind="invalid_request", detail=problem))
    prompt, text = gemini_wire.prompt_tokens(messages)
    stream = verb == "streamGenerateContent"
    said = " ".join(str(m.get("content", "")) for m in messages)
    if any(phrase in said for phrase in p.blocked_phrases):
        return await _blocked(send, model, prompt, stream, gemini_wire.wants_sse(scope))
    req = Request(model, prompt, limit, stream, key, text)
    sse = gemini_wire.wants_sse(scope)
    function = pick_function(payload)
    out: Render = gemini_wire.GeminiRender(stream, sse) if function is None else GeminiToolRender(stream, sse, function)
    await app.generate(req, out, receive, send)


async def _blocked(send: Send, model: str, prompt: int, stream: bool, sse: bool) -> None:
    """A prompt blocked by the safety filter, as Gemini answers it: 200, no candidates, a ``blockReason``."""
    body = gemini_wire.blocked(model, prompt)
    if not stream:
        return await send_json(send, 200, body)
    frame = b"data: " + body + b"\r\n\r\n" if sse else b"[" + body + b"]"
    headers = SSE_HEADERS if sse else [JSON_HEADER]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": frame})


async def handle_embeddings(app: SimulatorApp, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/embeddings`` as OpenAI and vLLM answer it."""
    ok, payload = await _payload(app, receive, send)
    if not ok:
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(model, str) or not model:
        return await app.error(send, ErrorInfo(kind="invalid_request", detail="you must provide a model parameter"))
    items, problem = emb.openai_inputs(payload)
    dims = payload.get("dimensions")
    encoding = payload.get("encoding_format", "float")
    if items is None:
        return await app.error(send, ErrorInfo(kind="invalid_request", detail=problem))
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        return await app.error(send, ErrorInfo(kind="invalid_request", detail="'dimensions' must be at least 1"))
    if encoding not in ("float", "base64"):
        detail = "'encoding_format' must be 'float' or 'base64'"
        return await app.error(send, ErrorInfo(kind="invalid_request", detail=detail))
    key = None
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            auth = v.decode("latin-1")
            key = auth[7:] if auth[:7].lower() == "bearer " else auth
    inputs = [(text, n, dims) for text, n in items]
    total = sum(n for _, n in items)

    def render(vectors: list[list[float]]) -> bytes:
        return emb.openai_body(model, vectors, total, encoding)

    await embed(app, model, key, inputs, render, receive, send)


async def embed(
    app: SimulatorApp,
    model: str,
    key: str | None,
    inputs: list[tuple[str, int, int | None]],
    render: Any,
    receive: Receive,
    send: Send,
) -> None:
    """Decide the request (faults, limits), wait its prefill time within the capacity model, answer."""
    eng = app.engine
    prompt = sum(n for _, n, _ in inputs)
    d = eng.decide(Request(model, prompt, 1, False, key, ""))
    if d.error is not None:
        eng.outcomes.append({"seq": d.seq, "status": d.error.kind, "queue_wait": 0.0, "ttft": None})
        return await app.fail(d, d.error, receive, send)
    sched, clock = eng.scheduler, eng.clock
    if sched.must_refuse():
        eng.outcomes.append({"seq": d.seq, "status": "queue_full", "queue_wait": 0.0, "ttft": None})
        return await app.error(send, ErrorInfo(kind="queue_full", model=model), headers=app.ids(d)[:1])
    t0 = clock.monotonic()
    ticket = sched.admit()
    try:
        if ticket.fut is not None:
            await ticket.wait()
        queue = clock.monotonic() - t0
        prefill = d.ttft * sched.load_factor()
        if prefill > 0:
            await clock.sleep(prefill)
        full = eng.profile.embedding_dimensions
        vectors = [emb.vector(eng.seed, model, text, full, dim) for text, _, dim in inputs]
        d.served = True
        eng.outcomes.append({"seq": d.seq, "status": "stop", "queue_wait": queue, "ttft": queue + prefill})
        await send_json(send, 200, render(vectors), app.ids(d))
    finally:
        ticket.leave()
        d.release()
