"""Admin API of the system of record (admin key as Bearer): virtual keys, consumer budgets, audit, usage.

    POST   /admin/keys                       create a key: 201 with its secret, shown this once
    GET    /admin/keys?limit=&after=&revoked=  list (paged by id)
    GET    /admin/keys/{id}                  one key
    PATCH  /admin/keys/{id}                  change fields (only those present)
    DELETE /admin/keys/{id}                  revoke
    PUT    /admin/consumers/{name}/budget    a consumer's dollar budget (``{}`` removes it)
    GET    /admin/audit?target=&limit=       the audit trail, newest first
    GET    /admin/usage?group_by=&from=&to=&run_id=&limit=&offset=   usage analytics (gateway/usage/query.py)

:class:`KeyAdmin` holds the logic (validated input in, ``(status, body)`` out); :class:`KeyRoutes` serves it
through the route table (gateway/routes.py).
Every change is applied in the database with its audit record, then announced to every replica
(gateway/keys/directory.py). Errors are OpenAI-shaped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError

from gateway.call import Call, Reply
from gateway.errors import GatewayError, InvalidRequest, NotFound, Unavailable
from gateway.keys.model import NAME, KeyCreate, KeyPatch, iso, public
from gateway.settings.budget import Budget
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
        if consumer in {c.name for c in self._rt.settings.consumers}:
            raise InvalidRequest(
                f"The consumer '{consumer}' is defined in the configuration file; set its budget there.",
                param="consumer",
            )
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


class KeyRoutes:
    """The handlers of the routes above, for the route table (gateway/routes.py), behind its admin-key stage.
    A failure of the database is a 503 ``database_error`` (and an ``admin_database_error`` log line), never its
    internals; every other error is raised for the request-id stage to render."""

    def __init__(self, rt: Any) -> None:
        self._admin = KeyAdmin(rt)
        self._log = rt.log

    async def _serve(self, call: Call, action: Callable[[KeyAdmin, str], Awaitable[Result]]) -> Reply:
        try:
            status, body = await action(self._admin, actor_of(call.headers))
        except GatewayError:
            raise
        except Exception as exc:  # the database failed or timed out: say so, without internals
            self._log.event("admin_database_error", level="error", path=call.path, error=type(exc).__name__)
            raise Unavailable(
                "The database is unavailable; nothing was changed. Please retry.", code="database_error"
            ) from None
        return Reply(status=status, body=orjson.dumps(body))

    async def create(self, call: Call) -> Reply:
        spec = parse_body(KeyCreate, await call.receive_body())
        return await self._serve(call, lambda a, who: a.create(spec, who))

    async def list(self, call: Call) -> Reply:
        return await self._serve(call, lambda a, who: a.list(query_params(call)))

    async def get(self, call: Call) -> Reply:
        return await self._serve(call, lambda a, who: a.get(call.path_params["key_id"]))

    async def update(self, call: Call) -> Reply:
        patch = parse_body(KeyPatch, await call.receive_body())
        return await self._serve(call, lambda a, who: a.update(call.path_params["key_id"], patch, who))

    async def revoke(self, call: Call) -> Reply:
        return await self._serve(call, lambda a, who: a.revoke(call.path_params["key_id"], who))

    async def consumer_budget(self, call: Call) -> Reply:
        budget = parse_body(Budget, await call.receive_body())
        return await self._serve(call, lambda a, who: a.consumer_budget(call.path_params["consumer"], budget, who))

    async def audit(self, call: Call) -> Reply:
        return await self._serve(call, lambda a, who: a.audit(query_params(call)))

    async def usage(self, call: Call) -> Reply:
        return await self._serve(call, lambda a, who: a.usage(query_params(call)))


def query_params(call: Call) -> dict[str, str]:
    """The query string's parameters (the last value of a repeated one)."""
    return dict(parse_qsl(call.query, keep_blank_values=True))
