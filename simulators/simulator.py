"""The simulator as a raw ASGI app (no framework on the hot path).

Routes: ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health`` (503 during a full outage),
``GET /metrics`` (vLLM flavour), and with ``control=True`` ``POST|GET /_sim/profile``, ``POST /_sim/reset``
and ``GET /_sim/decisions``.

Transport faults: ``connection_reset`` raises :class:`SimulatedConnectionReset` from the app. With
``reset_style="raise"`` (in-process) it is raised before any response; with ``"partial"`` (a real server) a
200 status line and headers go out first, so uvicorn drops a connection mid-response instead of answering 500.
``hang`` waits on the clock until the client disconnects (or ``hang-timeout`` passes, then resets).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Literal

import orjson

from gateway.clock import Clock, SystemClock
from simulators import gemini_wire
from simulators.asgitypes import JSON_HEADER, SSE_HEADERS, Receive, Scope, Send, read_body, send_json
from simulators.backend import Engine
from simulators.batching import Ticket
from simulators.control import handle_control
from simulators.decide import Decision, Request
from simulators.extraroutes import Render, handle_embeddings, handle_gemini
from simulators.extras import ExtrasRender, wants_extras
from simulators.failures import ErrorInfo, Flavour, SimulatedConnectionReset, render_error, retry_after_header
from simulators.profile import Profile, load_profile
from simulators.sampling import count_prompt_tokens
from simulators.wire import OpenAIRender, models


class SimulatorApp:
    def __init__(
        self, engine: Engine, *, control: bool = False, reset_style: Literal["raise", "partial"] = "raise"
    ) -> None:
        self.engine = engine
        self.control = control
        self.reset_style = reset_style

    @property
    def flavour(self) -> Flavour:
        return self.engine.flavour

    # The simulator's route table: one branch per endpoint, read top to bottom.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901
        kind = scope["type"]
        if kind == "http":
            path, method = scope["path"], scope["method"]
            if self.flavour == "gemini" and path.startswith(gemini_wire.PREFIXES):
                await handle_gemini(self, scope, receive, send)
            elif path == "/v1/chat/completions" and method == "POST":
                await self._chat(scope, receive, send)
            elif path == "/v1/embeddings" and method == "POST":
                await handle_embeddings(self, scope, receive, send)
            elif path == "/v1/models" and method == "GET" and not self.engine.health_ok():
                await self.error(send, ErrorInfo(kind="overloaded"))  # a full outage: the list fails too
            elif path == "/v1/models" and method == "GET":
                p = self.engine.profile
                ids = p.served_models or [p.model]
                body = models(self.flavour, ids, int(self.engine.clock.now()), p.max_model_len)
                await send_json(send, 200, body)
            elif path == "/health" and method == "GET":
                ok = self.engine.health_ok()
                await send_json(send, 200 if ok else 503, b"" if self.flavour == "vllm" else b"{}")
            elif path == "/metrics" and method == "GET" and self.flavour == "vllm":
                body = self.engine.metrics.render().encode()
                h = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
                await send({"type": "http.response.start", "status": 200, "headers": h})
                await send({"type": "http.response.body", "body": body})
            elif self.control and path.startswith("/_sim/"):
                status, body = await handle_control(self.engine, method, path, await read_body(receive))
                await send_json(send, status, body)
            else:
                await self.error(send, ErrorInfo(kind="not_found", detail=f"Invalid URL ({method} {path})"))
        elif kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.engine.start()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def error(
        self,
        send: Send,
        info: ErrorInfo,
        status: int | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        st, body = self.render_error(info)
        h = list(headers)
        if info.kind == "rate_limit" and self.flavour != "gemini":
            h.append((b"retry-after", retry_after_header(info.retry_after)))
        await send_json(send, status or st, orjson.dumps(body), h)

    def render_error(self, info: ErrorInfo) -> tuple[int, dict[str, Any]]:
        return gemini_wire.render_error(info) if self.flavour == "gemini" else render_error(self.flavour, info)

    def ids(self, d: Decision) -> list[tuple[bytes, bytes]]:
        """The request id and rate-limit headers the flavour sends (Gemini sends neither)."""
        return [] if self.flavour == "gemini" else [_request_id(d), *d.headers]

    async def _reset(self, send: Send, started: bool) -> None:
        if self.reset_style == "partial" and not started:
            h = [JSON_HEADER, (b"content-length", b"4096")]
            await send({"type": "http.response.start", "status": 200, "headers": h})
            await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
        raise SimulatedConnectionReset("simulated connection reset")

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload = orjson.loads(await read_body(receive))
        except orjson.JSONDecodeError:
            return await self.error(send, ErrorInfo(kind="invalid_request", detail="The body is not valid JSON."))
        req, problem = _parse(payload, scope)
        if req is None:
            return await self.error(send, ErrorInfo(kind="invalid_request", detail=problem))
        stream = bool(payload.get("stream"))
        opts = payload.get("stream_options")
        usage_chunk = stream and isinstance(opts, dict) and opts.get("include_usage") is True
        out: Render = (
            ExtrasRender(self.flavour, stream, usage_chunk, payload)
            if wants_extras(payload)
            else OpenAIRender(self.flavour, stream, usage_chunk)
        )
        await self.generate(req, out, receive, send)

    async def generate(self, req: Request, out: Render, receive: Receive, send: Send) -> None:
        """Decide ``req``, then fail it, refuse it (full queue) or serve it in ``out``'s wire shape."""
        eng = self.engine
        t_start = eng.clock.monotonic()
        d = eng.decide(req)
        if d.error is not None:
            eng.outcomes.append({"seq": d.seq, "status": d.error.kind, "queue_wait": 0.0, "ttft": None})
            return await self.fail(d, d.error, receive, send)
        sched = eng.scheduler
        if sched.must_refuse():
            eng.outcomes.append({"seq": d.seq, "status": "queue_full", "queue_wait": 0.0, "ttft": None})
            info = ErrorInfo(kind="queue_full", model=req.model)
            return await self.error(send, info, headers=self.ids(d)[:1])
        out.prepare(d)
        ticket = sched.admit()
        factor = sched.load_factor() if ticket.fut is None else None
        if d.ttft > 0 or d.decode_s > 0 or d.stall_seconds > 0 or ticket.fut is not None:
            run = self._serve_admitted(d, req, out, ticket, t_start, send, factor)
            return await self._abort_on_disconnect(d, run, ticket, receive)
        try:  # nothing to wait for: served inline, no watcher on the zero-latency path
            await self._serve(d, req, out, eng.clock.monotonic() - t_start, send, factor)
        finally:
            ticket.leave()
            d.release()

    async def _serve_admitted(
        self,
        d: Decision,
        req: Request,
        out: Render,
        ticket: Ticket,
        t_start: float,
        send: Send,
        factor: float | None,
    ) -> None:
        try:
            if ticket.fut is not None:
                await ticket.wait()
            queue_wait = self.engine.clock.monotonic() - t_start
            await self._serve(d, req, out, queue_wait, send, factor)
        finally:
            ticket.leave()
            d.release()

    async def _abort_on_disconnect(self, d: Decision, run: Awaitable[None], ticket: Ticket, receive: Receive) -> None:
        """Serve while watching the client: one that goes away aborts its request, as vLLM does, which frees its
        slot or its place in the queue (``finished_reason="abort"``)."""
        serving, watching = asyncio.ensure_future(run), asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait({serving, watching}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            serving.cancel()
            watching.cancel()
            ticket.leave()
            raise
        watching.cancel()
        if serving.done():
            return serving.result()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        ticket.leave()  # in case the serving task was cancelled before it ever ran
        if not d.served:  # gone before the answer was complete
            self.engine.metrics.aborted()
            self.engine.outcomes.append({"seq": d.seq, "status": "abort", "queue_wait": None, "ttft": None})

    async def fail(self, d: Decision, info: ErrorInfo, receive: Receive, send: Send) -> None:
        if info.kind == "hang":
            if await self._hang(receive, d.hang_timeout):
                return
            await self._reset(send, started=False)
        if info.kind == "connection_reset":
            await self._reset(send, started=False)
        await self.error(send, info, headers=self.ids(d))

    async def _hang(self, receive: Receive, limit: float) -> bool:
        """Wait until the client disconnects (True) or ``limit`` (> 0) seconds pass on the clock (False)."""
        clock = self.engine.clock

        async def sleeper() -> None:
            while True:
                await clock.sleep(limit if limit > 0 else 3600.0)
                if limit > 0:
                    return

        t_gone, t_sleep = asyncio.ensure_future(_disconnect(receive)), asyncio.ensure_future(sleeper())
        try:
            done, _ = await asyncio.wait({t_gone, t_sleep}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            t_gone.cancel()
            t_sleep.cancel()
        return t_gone in done

    def _headers(self, d: Decision, t_start: float) -> list[tuple[bytes, bytes]]:
        h = self.ids(d)
        if self.flavour == "openai":
            ms = int((self.engine.clock.monotonic() - t_start) * 1000)
            h += [(b"openai-processing-ms", str(ms).encode()), (b"openai-version", b"2020-10-01")]
        return h

    # One response in wire order (head, tokens with their gaps, cut or end), each fault a branch at its point.
    async def _serve(  # noqa: C901
        self,
        d: Decision,
        req: Request,
        out: Render,
        queue_wait: float,
        send: Send,
        factor: float | None = None,
    ) -> None:
        """``factor``: the load factor at admission when it was read then (prefill scales with the batch it
        joined), else it is read now."""
        sched, clock = self.engine.scheduler, self.engine.clock
        t_start = clock.monotonic() - queue_wait
        prefill = d.ttft * (sched.load_factor() if factor is None else factor)
        n, tokens = d.completion_tokens, d.tokens
        rid, created = d.response_id, int(clock.now())
        cut = d.cut_after if d.cut_after is None else min(d.cut_after, n)
        finish = d.finish_reason
        if not out.stream:
            sent = n if cut is None else cut
            wait = prefill + _gaps(d, 0, sent - 1) * sched.load_factor()
            if d.stall_after is not None and d.stall_after <= sent:
                wait += d.stall_seconds
            if wait > 0:
                await clock.sleep(wait)
            if cut is not None:
                self.finished(d, req, queue_wait, prefill, wait - prefill, cut, "abort")
                if d.cut_mode == "reset":
                    await self._reset(send, started=False)
                if d.cut_mode == "error":
                    return await self.error(send, ErrorInfo(kind="server_error"), headers=self.ids(d)[:1])
            content = "".join(tokens[:sent])
            body = out.body(rid, created, req.model, content, finish, req.prompt_tokens, sent)
            if cut is None:
                self.finished(d, req, queue_wait, prefill, wait - prefill, n, finish)
            return await send_json(send, 200, body, self._headers(d, t_start))

        ch = out.chunker(rid, created, req.model, req.prompt_tokens)
        media = SSE_HEADERS if getattr(out, "sse", True) else [JSON_HEADER]
        start_msg = {"type": "http.response.start", "status": 200, "headers": media + self._headers(d, t_start)}
        await send(start_msg)
        if prefill > 0:
            await clock.sleep(prefill)
        t_first = clock.monotonic()
        if role := ch.role():
            await send({"type": "http.response.body", "body": role, "more_body": True})
        for i in range(n):
            if cut is not None and i >= cut:
                break
            gap = _gaps(d, i - 1, i) * sched.load_factor() if i else 0.0
            if d.stall_after is not None and i == d.stall_after:
                gap += d.stall_seconds
            if gap > 0:
                await clock.sleep(gap)
            await send({"type": "http.response.body", "body": ch.token(tokens[i]), "more_body": True})
        decode = clock.monotonic() - t_first
        if cut is not None:
            self.finished(d, req, queue_wait, prefill, decode, cut, "abort")
            if d.cut_mode == "reset":
                await self._reset(send, started=True)
            tail = ch.error(self.render_error(ErrorInfo(kind="server_error"))[1])
            await send({"type": "http.response.body", "body": tail if d.cut_mode == "error" else b""})
            return
        if d.stall_after is not None and d.stall_after >= n and d.stall_seconds > 0:
            await clock.sleep(d.stall_seconds)
        tail = ch.end(finish, req.prompt_tokens, n)
        self.finished(d, req, queue_wait, prefill, clock.monotonic() - t_first, n, finish)
        await send({"type": "http.response.body", "body": tail})

    def finished(
        self, d: Decision, req: Request, queue: float, prefill: float, decode: float, n: int, reason: str
    ) -> None:
        eng = self.engine
        d.served = True
        eng.metrics.finished(
            prompt=req.prompt_tokens, generated=n, reason=reason, queue=queue, prefill=prefill, decode=decode
        )
        eng.outcomes.append(
            {
                "seq": d.seq,
                "status": reason,
                "queue_wait": queue,
                "ttft": queue + prefill,
                "e2e": queue + prefill + decode,
            }
        )


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has gone (the request body has been read already). A server that answers with
    more request messages instead of blocking, against the ASGI spec, is taken never to report a disconnect."""
    if (await receive())["type"] != "http.disconnect":
        await asyncio.get_running_loop().create_future()


def _request_id(d: Decision) -> tuple[bytes, bytes]:
    return b"x-request-id", f"req_{d.response_id}".encode()


def _gaps(d: Decision, lo: int, hi: int) -> float:
    """Sum of inter-token gaps ``[lo, hi)``; gap ``k`` comes before token ``k + 1``."""
    if d.itls is not None:
        return sum(d.itls[lo:hi])
    return d.itl * max(0, hi - lo)


def _parse(payload: Any, scope: Scope) -> tuple[Request | None, str]:
    if not isinstance(payload, dict):
        return None, "The body must be a JSON object."
    model, messages = payload.get("model"), payload.get("messages")
    if not isinstance(model, str) or not model:
        return None, "you must provide a model parameter"
    if not isinstance(messages, list) or not messages:
        return None, "'messages' is a required property and must be a non-empty array"
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        return None, "'max_tokens' must be a positive integer"
    prompt_tokens, text = count_prompt_tokens(messages)
    key = None
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            auth = v.decode("latin-1")
            key = auth[7:] if auth[:7].lower() == "bearer " else auth
            break
    return Request(model, prompt_tokens, max_tokens, bool(payload.get("stream")), key, text), ""


def create_app(
    flavour: Flavour = "openai",
    profile: str | dict[str, Any] | Profile = "instant",
    seed: int | str = 0,
    name: str | None = None,
    clock: Clock | None = None,
    *,
    control: bool = False,
    scale: float | None = None,
    reset_style: Literal["raise", "partial"] = "raise",
    log_limit: int = 100_000,
) -> SimulatorApp:
    """An ASGI simulator. ``name`` (default: the flavour) feeds the random streams with ``seed``."""
    engine = Engine(
        load_profile(profile, scale=scale),
        flavour=flavour,
        seed=seed,
        name=name or flavour,
        clock=clock or SystemClock(),
        log_limit=log_limit,
    )
    return SimulatorApp(engine, control=control, reset_style=reset_style)
