"""The route table: every request the gateway answers, one line each (:func:`build_routes`).

A path not in the table is a 404, a method its path does not list a 405 with ``Allow``. Every route, these
two included, starts with the request-id stage: an ``x-request-id`` on every reply and one renderer of errors
(gateway/requestid.py). The API routes then run their pipeline (gateway/pipeline.py); the others write one log
line each (health, readiness, admin, 404, 405), and the admin routes need the admin key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import orjson

from gateway.call import Call, Handler, Reply
from gateway.errors import MethodNotAllowed, NotFound
from gateway.keys.keyadmin import KeyRoutes
from gateway.openapi import ApiDocs
from gateway.pipeline import admin_pipeline, chat_pipeline, edge_pipeline, models_pipeline
from gateway.reload import ReloadRoutes
from gateway.router.routeradmin import RouterAdmin
from gateway.runtime import Runtime


class RouteTable:
    """(method, path) -> handler. A path is exact, or has ``{name}`` segments (one path segment each, handed to
    the handler as ``call.path_params``); exact paths are looked up first. ``edge`` wraps the 404 and 405
    handlers like any other route."""

    def __init__(self, routes: Iterable[tuple[str, str, Handler]], *, edge: Callable[[Handler], Handler]) -> None:
        self._by_path: dict[str, dict[str, Handler]] = {}
        for method, path, handler in routes:
            self._by_path.setdefault(path, {})[method] = handler
        self._templates = [(_template(path), methods) for path, methods in self._by_path.items() if "{" in path]
        self._not_found = edge(_not_found)
        self._not_allowed = {path: edge(_not_allowed(sorted(m))) for path, m in self._by_path.items()}
        self._by_methods = {id(methods): path for path, methods in self._by_path.items()}

    @property
    def paths(self) -> list[str]:
        return list(self._by_path)

    def handler(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for ``method`` on ``path``, and the path's parameters."""
        params: dict[str, str] = {}
        methods = self._by_path.get(path)
        if methods is None:
            for pattern, candidate in self._templates:
                found = pattern.fullmatch(path)
                if found is not None:
                    methods, params = candidate, found.groupdict()
                    break
            else:
                return self._not_found, params
        handler = methods.get(method)
        if handler is None:
            return self._not_allowed[self._by_methods[id(methods)]], params
        return handler, params


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def build_routes(rt: Runtime, docs: ApiDocs, reloads: ReloadRoutes | None = None) -> RouteTable:
    def edge(handler: Handler) -> Handler:
        return edge_pipeline(rt, handler)

    def admin_only(handler: Handler) -> Handler:
        return admin_pipeline(rt, handler)

    router, keys = RouterAdmin(rt.router, rt.log), KeyRoutes(rt)
    return RouteTable(
        [
            ("POST", "/v1/chat/completions", chat_pipeline(rt)),
            ("POST", "/v1/embeddings", chat_pipeline(rt, "embedding")),
            ("GET", "/v1/models", models_pipeline(rt)),
            ("GET", "/v1/health", edge(health)),
            ("GET", "/v1/ready", edge(Readiness(rt).answer)),
            ("GET", "/openapi.json", edge(docs.serve_document)),
            ("GET", "/docs", edge(docs.serve_page)),
            ("GET", "/admin/chaos", admin_only(router.get_chaos)),
            ("PUT", "/admin/chaos", admin_only(router.put_chaos)),
            ("DELETE", "/admin/chaos", admin_only(router.delete_chaos)),
            ("GET", "/admin/router", admin_only(router.state)),
            *_reload_routes(reloads, admin_only),
            ("POST", "/admin/keys", admin_only(keys.create)),
            ("GET", "/admin/keys", admin_only(keys.list)),
            ("GET", "/admin/keys/{key_id}", admin_only(keys.get)),
            ("PATCH", "/admin/keys/{key_id}", admin_only(keys.update)),
            ("DELETE", "/admin/keys/{key_id}", admin_only(keys.revoke)),
            ("PUT", "/admin/consumers/{consumer}/budget", admin_only(keys.consumer_budget)),
            ("GET", "/admin/audit", admin_only(keys.audit)),
            ("GET", "/admin/usage", admin_only(keys.usage)),
        ],
        edge=edge,
    )


def _reload_routes(
    reloads: ReloadRoutes | None, admin_only: Callable[[Handler], Handler]
) -> list[tuple[str, str, Handler]]:
    if reloads is None:
        return []
    return [("POST", "/admin/reload", admin_only(reloads.post)), ("GET", "/admin/reload", admin_only(reloads.get))]


async def health(call: Call) -> Reply:
    """Liveness: the process answers."""
    return Reply(body=b'{"status":"ok"}')


class Readiness:
    """Each provider's routing state (its breakers) and active health check, and the state store's. 503 only when
    no provider is available: each has its breakers all open or its health check failing. One unhealthy provider
    does not take the replica out (the router fails over); Redis down is reported, not a reason either (the
    failure policies answer for it)."""

    def __init__(self, rt: Runtime) -> None:
        self._router = rt.router
        self._store = rt.store
        self._health = rt.health
        self._providers = [(p.name, p.kind) for p in rt.settings.providers]

    async def answer(self, call: Call) -> Reply:
        states = self._router.provider_states()
        checked = self._health.states()
        providers: dict[str, dict[str, object]] = {}
        for name, kind in self._providers:
            check = checked.get(name, {"health": "unchecked", "checked_at": None})
            providers[name] = {"kind": kind, "state": states.get(name, "unknown"), **check}
        available = any(p["state"] != "open" and p["health"] != "unhealthy" for p in providers.values())
        body = {
            "status": "ready" if available else "unavailable",
            "providers": providers,
            "state_store": "up" if self._store.healthy else "down",
        }
        return Reply(status=200 if available else 503, body=orjson.dumps(body))


async def _not_found(call: Call) -> Reply:
    raise NotFound(f"Unknown request URL: {call.method} {call.path[:200]}.")


def _not_allowed(methods: Sequence[str]) -> Handler:
    async def refuse(call: Call) -> Reply:
        raise MethodNotAllowed(
            f"Method {call.method} is not allowed on {call.path}.", headers={"allow": ", ".join(methods)}
        )

    return refuse
