"""Admin API of the system of record (admin key as Bearer): virtual keys, consumer budgets, audit, usage.

    POST   /admin/keys                       create a key: 201 with its secret, shown this once
    GET    /admin/keys?limit=&after=&revoked=  list (paged by id)
    GET    /admin/keys/{id}                  one key
    PATCH  /admin/keys/{id}                  change fields (only those present)
    DELETE /admin/keys/{id}                  revoke
    PUT    /admin/consumers/{name}/budget    a consumer's dollar budget (``{}`` removes it)
    GET    /admin/audit?target=&limit=       the audit trail, newest first
    GET    /admin/usage?group_by=&from=&to=&run_id=&limit=&offset=   usage analytics (gateway/usage/query.py)

:class:`KeyAdmin` holds the logic (validated input in, ``(status, body)`` out); :func:`keys_router` mounts it.
Every change is applied in the database with its audit record, then announced to every replica
(gateway/keys/directory.py). Errors are OpenAI-shaped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from gateway.budget.settings import Budget
from gateway.errors import AuthenticationFailed, GatewayError, InvalidRequest, NotFound, Unavailable
from gateway.keys.model import NAME, KeyCreate, KeyPatch, iso, public
from gateway.usage.query import GROUPS, UsageQuery, usage

Result = tuple[int, Any]


def invalid_field(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or None
    return InvalidRequest(f"Invalid field {where or 'body'}: {err['msg']}.", param=where)


def parse_body(model: type[BaseModel], raw: bytes) -> Any:
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_field(exc) from None


def _time(value: str | None, name: str) -> float | None:
    """An ISO 8601 date or date-time (UTC unless it says otherwise), or epoch seconds."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO 8601 date or epoch seconds.", param=name) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidRequest(f"'{name}' must be an integer from {lo} to {hi}.", param=name)
    return int(raw)


class KeyAdmin:
    def __init__(self, rt: Any) -> None:
        self._rt = rt

    @property
    def _records(self) -> Any:
        records = self._rt.records
        if records is None:
            raise Unavailable(
                "No database is configured (database.url), so there are no virtual keys or usage records.",
                code="database_not_configured",
            )
        return records

    def _check(self, *, tier: str | None, models: list[str] | None, consumer: str | None) -> None:
        settings = self._rt.settings
        if tier is not None and tier not in settings.tiers:
            raise InvalidRequest(f"Unknown tier '{tier}'.", param="tier")
        known = {n for g in settings.models for n in (g.name, *g.aliases)}
        for m in models or ():
            if m not in known:
                raise InvalidRequest(f"Unknown model '{m}'.", param="models")
        if consumer is not None and consumer in {c.name for c in settings.consumers}:
            raise InvalidRequest(
                f"The consumer '{consumer}' is defined in the configuration file; a virtual key cannot join it.",
                param="consumer",
            )

    async def create(self, spec: KeyCreate, actor: str) -> Result:
        self._check(tier=spec.tier, models=spec.models, consumer=spec.consumer)
        records = self._records
        created = await records.store.create(spec, actor=actor)
        await records.directory.announce()
        return 201, public(created.row, now=self._rt.clock.now()) | {"key": created.secret}

    async def list(self, params: Mapping[str, str]) -> Result:
        limit = _int(params, "limit", 100, 1, 1000)
        revoked = params.get("revoked", "false").lower() in ("1", "true", "yes")
        rows = await self._records.store.list(limit=limit + 1, after=params.get("after") or None, revoked=revoked)
        now = self._rt.clock.now()
        data = [public(r, now=now) for r in rows[:limit]]
        return 200, {"object": "list", "data": data, "has_more": len(rows) > limit}

    async def get(self, key_id: str) -> Result:
        row = await self._records.store.get(key_id)
        if row is None:
            raise NotFound(f"No key with id '{key_id}'.")
        return 200, public(row, now=self._rt.clock.now())

    async def update(self, key_id: str, patch: KeyPatch, actor: str) -> Result:
        self._check(tier=patch.tier, models=patch.models, consumer=None)
        records = self._records
        row = await records.store.update(key_id, patch, actor=actor)
        if row is None:
            raise NotFound(f"No active key with id '{key_id}'.")
        await records.directory.announce()
        return 200, public(row, now=self._rt.clock.now())

    async def revoke(self, key_id: str, actor: str) -> Result:
        records = self._records
        row = await records.store.revoke(key_id, actor=actor)
        if row is None:
            raise NotFound(f"No key with id '{key_id}'.")
        await records.directory.announce()
        return 200, public(row, now=self._rt.clock.now())

    async def consumer_budget(self, consumer: str, budget: Budget, actor: str) -> Result:
        if not re.match(NAME, consumer):
            raise InvalidRequest("Invalid consumer name.", param="consumer")
        records = self._records
        await records.store.set_consumer_budget(consumer, budget.usd_per_day, budget.usd_per_month, actor=actor)
        await records.directory.announce()
        return 200, {"object": "consumer_budget", "consumer": consumer, **budget.model_dump()}

    async def audit(self, params: Mapping[str, str]) -> Result:
        rows = await self._records.store.audit(limit=_int(params, "limit", 100, 1, 1000), target=params.get("target"))
        data = [
            {"id": r.id, "ts": iso(r.ts), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail}
            for r in rows
        ]
        return 200, {"object": "list", "data": data}

    async def usage(self, params: Mapping[str, str]) -> Result:
        group_by = tuple(g for g in (params.get("group_by") or "key").split(",") if g)
        bad = [g for g in group_by if g not in GROUPS]
        if bad or not group_by or len(set(group_by)) != len(group_by):
            raise InvalidRequest(f"'group_by' takes distinct values among {', '.join(GROUPS)}.", param="group_by")
        query = UsageQuery(
            group_by=group_by,
            start=_time(params.get("from"), "from"),
            end=_time(params.get("to"), "to"),
            run_id=params.get("run_id") or None,
            limit=_int(params, "limit", 100, 1, 1000),
            offset=_int(params, "offset", 0, 0, 10**9),
        )
        page = await usage(self._records.engine, query)
        page["from"], page["to"] = iso(query.start), iso(query.end)
        return 200, page


def actor_of(headers: Mapping[str, str]) -> str:
    """Who made an admin change: the admin API and a short fingerprint of the admin key presented."""
    auth = headers.get("authorization", "")
    token = auth.partition(" ")[2].strip() or headers.get("x-api-key", "")
    return f"admin-api:{hashlib.sha256(token.encode()).hexdigest()[:8]}"


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def keys_router() -> APIRouter:
    """The routes above on a FastAPI router; the runtime is ``request.app.state.runtime``."""
    api = APIRouter()

    async def serve(request: Request, action: Any) -> Response:
        rt = request.app.state.runtime
        try:
            if not rt.keys.is_admin(request.headers):
                raise AuthenticationFailed("This endpoint needs the admin key.", code="invalid_admin_key")
            status, body = await action(KeyAdmin(rt), actor_of(request.headers))
        except GatewayError as exc:
            return Response(exc.to_json(), status_code=exc.status, headers=exc.headers, media_type="application/json")
        except Exception as exc:  # the database failed or timed out: say so, without internals
            rt.log.event("admin_database_error", level="error", path=request.url.path, error=type(exc).__name__)
            err = Unavailable("The database is unavailable; nothing was changed. Please retry.", code="database_error")
            return Response(err.to_json(), status_code=err.status, media_type="application/json")
        return _json(status, body)

    @api.post("/admin/keys", include_in_schema=False)
    async def create(request: Request) -> Response:
        raw = await request.body()
        return await serve(request, lambda a, who: a.create(parse_body(KeyCreate, raw), who))

    @api.get("/admin/keys", include_in_schema=False)
    async def list_keys(request: Request) -> Response:
        return await serve(request, lambda a, who: a.list(request.query_params))

    @api.get("/admin/keys/{key_id}", include_in_schema=False)
    async def get(request: Request, key_id: str) -> Response:
        return await serve(request, lambda a, who: a.get(key_id))

    @api.patch("/admin/keys/{key_id}", include_in_schema=False)
    async def patch(request: Request, key_id: str) -> Response:
        raw = await request.body()
        return await serve(request, lambda a, who: a.update(key_id, parse_body(KeyPatch, raw), who))

    @api.delete("/admin/keys/{key_id}", include_in_schema=False)
    async def revoke(request: Request, key_id: str) -> Response:
        return await serve(request, lambda a, who: a.revoke(key_id, who))

    @api.put("/admin/consumers/{consumer}/budget", include_in_schema=False)
    async def budget(request: Request, consumer: str) -> Response:
        raw = await request.body()
        return await serve(request, lambda a, who: a.consumer_budget(consumer, parse_body(Budget, raw), who))

    @api.get("/admin/audit", include_in_schema=False)
    async def audit(request: Request) -> Response:
        return await serve(request, lambda a, who: a.audit(request.query_params))

    @api.get("/admin/usage", include_in_schema=False)
    async def usage_report(request: Request) -> Response:
        return await serve(request, lambda a, who: a.usage(request.query_params))

    return api
