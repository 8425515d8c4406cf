"""Admin API of the router (admin key only): chaos rules at run time, breaker and shedding state.

    GET    /admin/chaos     the chaos settings in force
    PUT    /admin/chaos     replace them (body: ``router.chaos`` settings; ``{"enabled": false}`` turns it off)
    DELETE /admin/chaos     turn chaos off and drop the rules
    GET    /admin/router    breaker states, in-flight counts, budget-exhausted providers

The app mounts it with ``app.include_router(admin_router())``; the runtime is ``request.app.state.runtime``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from gateway.errors import AuthenticationFailed, GatewayError, InvalidRequest
from gateway.router.settings import ChaosSettings


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


def _error(exc: GatewayError) -> Response:
    return Response(exc.to_json(), status_code=exc.status, headers=exc.headers, media_type="application/json")


def _runtime(request: Request) -> Any:
    rt = request.app.state.runtime
    if not rt.keys.is_admin(request.headers):
        raise AuthenticationFailed("This endpoint needs the admin key.", code="invalid_admin_key")
    return rt


def admin_router() -> APIRouter:
    api = APIRouter()

    @api.get("/admin/chaos", include_in_schema=False)
    async def get_chaos(request: Request) -> Response:
        try:
            rt = _runtime(request)
        except GatewayError as exc:
            return _error(exc)
        return _json(rt.router.chaos.settings.model_dump())

    @api.put("/admin/chaos", include_in_schema=False)
    async def put_chaos(request: Request) -> Response:
        try:
            rt = _runtime(request)
            try:
                new = ChaosSettings.model_validate(orjson.loads(await request.body()))
            except (orjson.JSONDecodeError, ValidationError) as exc:
                raise InvalidRequest(f"Invalid chaos settings: {str(exc).splitlines()[0]}") from None
        except GatewayError as exc:
            return _error(exc)
        rt.router.chaos.update(new)
        rt.log.event("chaos_changed", level="warning", enabled=new.enabled, rules=len(new.rules))
        return _json(new.model_dump())

    @api.delete("/admin/chaos", include_in_schema=False)
    async def delete_chaos(request: Request) -> Response:
        try:
            rt = _runtime(request)
        except GatewayError as exc:
            return _error(exc)
        rt.router.chaos.update(ChaosSettings())
        return _json(ChaosSettings().model_dump())

    @api.get("/admin/router", include_in_schema=False)
    async def router_state(request: Request) -> Response:
        try:
            rt = _runtime(request)
        except GatewayError as exc:
            return _error(exc)
        router = rt.router
        return _json(
            {
                "breakers": router.breakers.states(),
                "providers": router.provider_states(),
                "in_flight": router.shedder.in_flight,
                "quota_exhausted": sorted(router.exhausted_providers()),
            }
        )

    return api
