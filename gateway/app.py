"""The ASGI app: HTTP in, pipeline, HTTP out. ``create_app`` is the only way to build one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.asgi import CallFactory, FastPath, Receive, Scope, Send
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from gateway.keys.admin import keys_router
from gateway.openapi import build_openapi
from gateway.pipeline import chat_pipeline, models_pipeline
from gateway.rng import Rng
from gateway.router.admin import admin_router
from gateway.runtime import build_runtime
from gateway.state import connect_state
from gateway.transport import AiohttpTransport, Transport


class GatewayApp(FastAPI):
    """FastAPI for the edges (health, readiness, admin, 404/405); the hot routes go straight to the pipelines."""

    fast_path: FastPath | None = None

    def openapi(self) -> dict[str, Any]:
        """The public API's document (gateway/openapi.py), built on first use; FastAPI serves it at
        ``/openapi.json`` and Swagger UI at ``/docs``."""
        if not self.openapi_schema:
            self.openapi_schema = build_openapi(self.title, self.version)
        return self.openapi_schema

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and await fast.serve(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: Rng | None = None,
    state: Any = None,
    upstream_transport: Transport | None = None,
    run_id: str | None = None,
) -> FastAPI:
    """Build a gateway. Every source of time, randomness, state and network is injectable."""
    rt = build_runtime(
        settings,
        clock=clock or SystemClock(),
        rng=rng or Rng(settings.seed),
        state=state if state is not None else connect_state(settings.state.redis_url),
        transport=upstream_transport or AiohttpTransport(),
    )
    chat = chat_pipeline(rt)
    embeddings = chat_pipeline(rt, "embedding")
    models = models_pipeline(rt)
    calls = CallFactory(rt, run_id)

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def ready(request: Request) -> Response:
        states = rt.router.provider_states()
        routable = any(s != "open" for s in states.values())
        body = {
            "status": "ready" if routable else "unavailable",
            "providers": {p.name: {"kind": p.kind, "state": states.get(p.name, "unknown")} for p in settings.providers},
        }
        return Response(orjson.dumps(body), status_code=200 if routable else 503, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = GatewayApp(
        title="Faultline",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",  # Swagger UI; the page loads its script and styles from a CDN in the browser
        redoc_url=None,
        # Tracing is ours (gateway/observability), per app; FastAPI's global-provider probe costs per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = rt
    # The pipelines are served by FastPath, ahead of FastAPI's middleware and per-request machinery.
    app.fast_path = FastPath(
        routes={
            "/v1/chat/completions": ("POST", chat),
            "/v1/embeddings": ("POST", embeddings),
            "/v1/models": ("GET", models),
        },
        calls=calls,
        log=rt.log,
    )
    app.add_route("/v1/chat/completions", _method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"])
    app.add_route("/v1/embeddings", _method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"])
    app.add_route("/v1/models", _method_not_allowed, methods=["POST", "PUT", "DELETE", "PATCH"])
    app.add_route("/v1/health", health, methods=["GET"])
    app.add_route("/v1/ready", ready, methods=["GET"])
    app.include_router(admin_router())
    app.include_router(keys_router())

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        err: GatewayError
        if status == 404:
            err = NotFound(f"Unknown request URL: {request.method} {request.url.path}.")
        elif status == 405:
            err = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
        elif isinstance(exc, RequestValidationError):
            err = InvalidRequest("The request is invalid.")
        else:
            err = GatewayError("The server had an error while processing your request.")
        return Response(err.to_json(), status_code=err.status, media_type="application/json")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, http_error)
    return app


async def _method_not_allowed(request: Request) -> Response:
    err = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
    return Response(err.to_json(), status_code=err.status, media_type="application/json")
