"""The request pipeline, in one place. Read top to bottom: that is the order every request goes through.

    request id -> telemetry -> auth -> parse -> [served by] -> [idempotency] -> quota -> [cache] -> [budget]
    -> accounting -> router -> adapter

(``served by`` only when some consumer has the ``served_by`` permission; ``idempotency`` unless turned off;
``cache`` only when a model group opts in; ``budget`` only when a dollar budget can apply.)

A stage is ``async (call, next_) -> Reply`` (gateway/call.py). Nothing reaches a provider before auth and quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import orjson

from gateway.accounting import AccountingStage
from gateway.auth import AdminStage, AuthStage
from gateway.budget.stage import BudgetStage
from gateway.cache.stage import CacheStage
from gateway.call import Call, Handler, Reply, Stage
from gateway.idempotency.claims import IdempotencyStore
from gateway.idempotency.stage import IdempotencyStage
from gateway.observability.stage import RequestLine, TelemetryStage, Traced, traced_handler
from gateway.parse import ParseStage
from gateway.quota.stage import QuotaStage
from gateway.requestid import RequestIdStage
from gateway.runtime import Runtime
from gateway.servedby import ServedByStage
from gateway.store.scope import StoreScope


def chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Wrap ``terminal`` in ``stages``: the first stage is the outermost. Each link is ``partial(stage,
    next_=inner)``: calling it returns the stage's own coroutine, with no wrapping coroutine of its own."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, next_=handler)
    return handler


def chat_pipeline(rt: Runtime, kind: Literal["chat", "embedding"] = "chat") -> Handler:
    """``POST /v1/chat/completions``, or with ``kind="embedding"`` ``POST /v1/embeddings``: the same stages, the
    endpoint's own request schema (the ``chat`` permission covers both)."""
    tracing = rt.telemetry.tracing
    return chain(
        [
            RequestIdStage(rt.log),
            StoreScope(rt.store),
            TelemetryStage(rt.telemetry),
            Traced("auth", AuthStage(rt.keys, permission="chat"), tracing),
            ParseStage(rt.catalog, kind),
            *([ServedByStage()] if any("served_by" in c.permissions for c in rt.settings.consumers) else []),
            *_idempotency_stage(rt),
            Traced("quota", QuotaStage(rt.quota, rt.settings), tracing),
            *_cache_stage(rt),
            *_budget_stage(rt),
            AccountingStage(rt.settings.prices, rt.usage, estimates=rt.settings.quota),
        ],
        terminal=traced_handler("route", rt.router, tracing),
    )


def _idempotency_stage(rt: Runtime) -> list[Stage]:
    """``Idempotency-Key`` (gateway/idempotency/), unless turned off: before quota, so a replay charges nothing."""
    s = rt.settings
    if not s.idempotency.enabled:
        return []
    store = IdempotencyStore(rt.state, prefix=s.quota.key_prefix)
    deadline = s.router.timeouts.request_deadline_s
    return [IdempotencyStage(store, s.idempotency, state=rt.store, deadline_s=deadline, events=rt.telemetry)]


def _cache_stage(rt: Runtime) -> list[Stage]:
    """The response cache (gateway/cache/), only when some model group opts in: after quota (a hit counts
    against the request quota), before budget (a hit costs nothing upstream)."""
    s = rt.settings
    if not s.cache.groups:
        return []
    stage = CacheStage(
        rt.store, s.cache, prefix=s.quota.key_prefix, catalog=rt.catalog, clock=rt.clock, events=rt.telemetry
    )
    return [Traced("cache", stage, rt.telemetry.tracing)]


def _budget_stage(rt: Runtime) -> list[Stage]:
    """The dollar-budget stage, only when a budget can apply (a database, or a configured consumer's budget)."""
    if rt.budgets is None or rt.worst_case is None:
        return []
    stage = BudgetStage(
        rt.budgets,
        catalog=rt.catalog,
        worst=rt.worst_case,
        prices=rt.settings.prices,
        quota=rt.settings.quota,
        settings=rt.settings.budget,
        clock=rt.clock,
        events=rt.telemetry,
    )
    return [Traced("budget", stage, rt.telemetry.tracing)]


def models_pipeline(rt: Runtime) -> Handler:
    async def list_models(call: Call) -> Reply:
        return Reply(body=orjson.dumps(rt.catalog.listing(call.consumer)))

    return chain(
        [RequestIdStage(rt.log), TelemetryStage(rt.telemetry), AuthStage(rt.keys, permission="models")],
        terminal=list_models,
    )


def edge_pipeline(rt: Runtime, terminal: Handler) -> Handler:
    """Health, readiness, 404 and 405: a log line and the request id (errors rendered), nothing else."""
    return chain([RequestLine(rt.log, rt.clock), RequestIdStage(rt.log)], terminal=terminal)


def admin_pipeline(rt: Runtime, terminal: Handler) -> Handler:
    """The admin routes: as :func:`edge_pipeline`, for the admin key only."""
    return chain([RequestLine(rt.log, rt.clock), RequestIdStage(rt.log), AdminStage(rt.keys)], terminal=terminal)
