"""The ASGI app: HTTP in, pipeline, HTTP out. ``create_app`` is the only way to build one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.asgi import CallFactory, Edge, Receive, Scope, Send
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.openapi import ApiDocs
from gateway.rng import Rng
from gateway.routes import RouteTable, build_routes
from gateway.runtime import build_runtime
from gateway.state import connect_state
from gateway.store.client import StateClient
from gateway.transport import AiohttpTransport, Transport


class GatewayApp(FastAPI):
    """Every HTTP request goes to the edge (gateway/asgi.py) and its route table (gateway/routes.py); FastAPI
    runs the lifespan (the runtime's start and stop)."""

    edge: Edge | None = None
    route_table: RouteTable | None = None
    docs: ApiDocs | None = None

    def openapi(self) -> dict[str, Any]:
        """The public API's document (gateway/openapi.py), served at ``/openapi.json``."""
        assert self.docs is not None
        return self.docs.document()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.edge is not None:
            await self.edge.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: Rng | None = None,
    state: StateClient | None = None,
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
        docs_url=None,  # served by the route table, like every other route
        redoc_url=None,
        openapi_url=None,
        # Tracing is ours (gateway/observability), per app; FastAPI's global-provider probe costs per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = rt
    app.docs = ApiDocs(app.title, app.version)
    app.route_table = build_routes(rt, app.docs)
    app.edge = Edge(routes=app.route_table, calls=CallFactory(rt, run_id), log=rt.log)
    return app
