"""The ASGI app: HTTP in, pipeline, HTTP out. ``create_app`` is the only way to build one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.asgi import CallFactory, Edge, Receive, Scope, Send
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.connection.policy import STATE_KEY, ConnectionPolicy
from gateway.openapi import ApiDocs
from gateway.reload import Reloader, ReloadRoutes, ReloadWiring
from gateway.rng import Rng
from gateway.routes import RouteTable, build_routes
from gateway.runtime import Runtime, build_runtime
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


def _lifespan(rt: Runtime, connections: ConnectionPolicy) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """The app's start and stop: the runtime, then its reloader (``app.state.reloader``); the connection policy
    goes in the lifespan state."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        reloader: Reloader = app.state.reloader
        await rt.start()
        reloader.start()
        try:
            yield {STATE_KEY: connections}
        finally:
            reloader.stop()
            await reloader.current.stop()  # the parts every generation shares, and those added since the start

    return lifespan


def _gateway_app(rt: Runtime, connections: ConnectionPolicy) -> GatewayApp:
    """The app before its routes: FastAPI's own docs, OpenAPI route and telemetry are off."""
    return GatewayApp(
        title="Faultline",
        version="0.1.0",
        lifespan=_lifespan(rt, connections),
        docs_url=None,  # served by the route table, like every other route
        redoc_url=None,
        openapi_url=None,
        # Tracing is ours (gateway/observability), per app; FastAPI's global-provider probe costs per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: Rng | None = None,
    state: StateClient | None = None,
    upstream_transport: Transport | None = None,
    run_id: str | None = None,
    reload: ReloadWiring | None = None,
) -> GatewayApp:
    """Build a gateway. Every source of time, randomness, state and network is injectable. ``reload``: where a
    reload reads the configuration and what triggers one (gateway/reload.py); without it a reload is refused."""
    rt = build_runtime(
        settings,
        clock=clock or SystemClock(),
        rng=rng or Rng(settings.seed),
        state=state if state is not None else connect_state(settings.state.redis_url),
        transport=upstream_transport or AiohttpTransport(),
    )

    # Published in the lifespan state, where uvicorn hands it to every connection (gateway/connection/).
    connections = ConnectionPolicy.build(settings.server.limits, rt.telemetry.metrics.client_connection_closed)
    app = _gateway_app(rt, connections)
    docs = app.docs = ApiDocs(app.title, app.version)

    ids = rt.rng.child("request-id")  # one id stream for every generation: a reload must not repeat ids

    def serve(gen: Runtime) -> Callable[[], None]:
        """Build what serves ``gen``; the function returned swaps it in."""
        table, calls = build_routes(gen, docs, ReloadRoutes(reloader)), CallFactory(gen, run_id, ids)

        def swap() -> None:
            app.state.runtime, app.route_table = gen, table
            if app.edge is None:
                app.edge = Edge(routes=table, calls=calls, log=gen.log)
            else:
                app.edge.use(table, calls)

        return swap

    reloader = app.state.reloader = Reloader(rt, serve, reload)
    serve(rt)()
    return app
