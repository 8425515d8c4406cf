"""Everything one gateway app owns, built once from the settings and the injected clock, RNG, state and
transport. No module-level state anywhere: two apps in one process share nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from redis.exceptions import RedisError

from gateway.accounting import UsageSink, UsageTotals
from gateway.adapters.base import OpenAICompatibleAdapter
from gateway.adapters.registry import build_adapters
from gateway.auth import KeyRing
from gateway.budget.dollars import WorstCase
from gateway.budget.redisbudgets import RedisBudgets
from gateway.catalog import ModelCatalog
from gateway.clock import Clock
from gateway.config import Settings
from gateway.observability.logs import EventLog
from gateway.observability.telemetry import Telemetry
from gateway.quota.limiter import QuotaEvents, QuotaLimiter
from gateway.records import Records, build_records
from gateway.rng import Rng
from gateway.router.orchestrator import Router
from gateway.store.client import StateClient
from gateway.store.statestore import StateStore
from gateway.transport import Transport
from gateway.upstream.health import HealthChecks, Target, check_url


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    rng: Rng
    state: StateClient  # redis.asyncio.Redis (or fakeredis): the shared state store
    store: StateStore  # the same, bounded, with its health
    transport: Transport
    log: EventLog
    catalog: ModelCatalog
    keys: KeyRing
    adapters: dict[str, OpenAICompatibleAdapter]
    router: Router
    quota: QuotaLimiter
    usage: UsageSink
    telemetry: Telemetry
    health: HealthChecks  # active checks of the upstreams (gateway/upstream/)
    budgets: RedisBudgets | None = None  # dollar budgets, when any can apply (gateway/budget/)
    worst_case: WorstCase | None = None
    records: Records | None = None  # the database, when one is configured (gateway/records.py)
    generation: int = 1  # 1 at start, one more per reload applied (gateway/reload.py)

    async def start(self) -> None:
        """Called once by the app's lifespan before the first request."""
        await self.telemetry.start()
        await self.quota.start()
        if self.budgets is not None:
            try:
                async with asyncio.timeout(max(self.settings.state.timeout_s, 1.0)):
                    await self.budgets.load()
            except (RedisError, OSError, TimeoutError) as exc:  # loaded on first use instead
                self.telemetry.store_error("budget_load", type(exc).__name__)
        if self.records is not None:
            await self.records.start()
        await self.health.start()

    async def stop(self) -> None:
        """Called once by the app's lifespan after the last request."""
        await self.health.stop()
        await self.quota.stop()
        if self.budgets is not None:
            await self.budgets.aclose()
        await self.transport.aclose()
        await self.telemetry.stop()
        if self.records is not None:  # after telemetry: its last records are queued by then
            await self.records.stop()


def build_runtime(settings: Settings, *, clock: Clock, rng: Rng, state: StateClient, transport: Transport) -> Runtime:
    catalog = ModelCatalog(settings)
    adapters = build_adapters(settings.providers, transport, clock=clock)
    telemetry = Telemetry.from_settings(settings, clock=clock, rng=rng.child("telemetry"))
    store = StateStore(state, settings.state, events=telemetry)
    router = Router(settings, catalog, adapters, clock, rng.child("router"), store=store, events=telemetry)
    quota_events: QuotaEvents = telemetry
    records = build_records(settings, clock=clock, log=telemetry.logs, state=state, events=telemetry)
    if records is not None:
        telemetry.sinks.append(records.usage)
    budgets = _budgets(settings, store) if _budgeted(settings, records) else None
    return Runtime(
        settings=settings,
        clock=clock,
        rng=rng,
        state=state,
        store=store,
        transport=transport,
        log=telemetry.logs,
        catalog=catalog,
        keys=KeyRing(settings, records.directory if records is not None else None),
        adapters=adapters,
        router=router,
        quota=QuotaLimiter(store, settings.quota, clock=clock, events=quota_events),
        usage=UsageTotals(),
        telemetry=telemetry,
        health=HealthChecks(_health_targets(settings, adapters), transport, clock, telemetry),
        budgets=budgets,
        worst_case=WorstCase(settings.models, settings.prices) if budgets is not None else None,
        records=records,
    )


def next_runtime(old: Runtime, settings: Settings, *, carry: bool = True) -> Runtime:
    """The runtime of a reloaded configuration: what is derived from the settings is built anew (catalog, keys,
    adapters, router, the worst-case prices), the router carrying over its predecessor's state
    (gateway/router/carry.py); what lives as long as the process is shared with ``old`` (clock, RNG, state store,
    transport, telemetry, quota limiter, usage totals, database, budget store). ``old`` is left untouched but
    for the router state it hands over (none with ``carry=False``: a trial build that checks the settings);
    raises :class:`~gateway.config.ConfigError` before handing anything over."""
    generation = old.generation + 1
    catalog = ModelCatalog(settings)
    adapters = build_adapters(settings.providers, old.transport, clock=old.clock)
    rng = old.rng.child("router").child(f"generation-{generation}")
    previous = old.router if carry else None
    events = old.telemetry
    router = Router(settings, catalog, adapters, old.clock, rng, store=old.store, events=events, previous=previous)
    budgets = old.budgets
    if budgets is None and _budgeted(settings, old.records):
        budgets = _budgets(settings, old.store)
    return replace(
        old,
        settings=settings,
        catalog=catalog,
        keys=KeyRing(settings, old.records.directory if old.records is not None else None),
        adapters=adapters,
        router=router,
        budgets=budgets,
        worst_case=WorstCase(settings.models, settings.prices) if _budgeted(settings, old.records) else None,
        generation=generation,
    )


def adopt(rt: Runtime) -> None:
    """Point the long-lived parts at ``rt``'s settings as it is swapped in (a reload: gateway/reload.py): the
    metric labels and trace names, the virtual keys' checks, the upstream health checks."""
    rt.telemetry.follow(rt.settings)
    if rt.records is not None:
        rt.records.directory.follow(rt.settings)
    rt.health.retarget(_health_targets(rt.settings, rt.adapters))


def _budgeted(settings: Settings, records: Records | None) -> bool:
    """Can a dollar budget apply: a database (budgets set through the admin API), or a configured one."""
    return records is not None or any(c.budget is not None for c in settings.consumers)


def _budgets(settings: Settings, store: StateStore) -> RedisBudgets:
    q = settings.quota
    return RedisBudgets(store, prefix=q.key_prefix, reservation_ttl_ms=int(q.lease_ttl_s * 1000))


def _health_targets(settings: Settings, adapters: dict[str, OpenAICompatibleAdapter]) -> list[Target]:
    """The providers with a ``health_check``: the URL it asks and the provider's credentials."""
    return [
        Target(p.name, check_url(p.base_url, p.health_check.path), adapters[p.name].credentials(), p.health_check)
        for p in settings.providers
        if p.health_check is not None
    ]
