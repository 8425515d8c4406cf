"""Usage analytics: requests, errors, tokens, cost, TTFT and latency percentiles, grouped and paged.

``group_by`` is any of ``key``, ``consumer``, ``provider``, ``model``, ``day`` (UTC day of arrival), in the
order given. A row counts ``requests``, ``errors`` (answered with a status >= 400), ``tokens_in``,
``tokens_out``, ``cost_usd``, and gives ``ttft_p50_s``/``ttft_p95_s`` and ``latency_p50_s``/``latency_p95_s``
(continuous percentiles, i.e. linear interpolation between the two nearest values, as PostgreSQL's
``percentile_cont``: computed there by the database, on SQLite here in Python; requests without a first byte or
an end have no TTFT or latency and are left out of those). The time range is ``[from, to)`` on arrival.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, case, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.schema import usage_records as u

GROUPS = ("key", "consumer", "provider", "model", "day")
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class UsageQuery:
    group_by: tuple[str, ...] = ("key",)
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # exclusive
    run_id: str | None = None
    limit: int = 100
    offset: int = 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation at position ``q * (n - 1)`` of the sorted values."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _group_columns(group_by: Sequence[str]) -> list[ColumnElement[Any]]:
    cols: list[ColumnElement[Any]] = []
    for g in group_by:
        if g == "key":
            cols.append(u.c.key_id)
        elif g == "day":
            cols.append(cast(u.c.ts / DAY_S, Integer).label("day"))
        else:
            cols.append(u.c[g])
    return cols


def _filtered(q: Select[Any], query: UsageQuery) -> Select[Any]:
    if query.start is not None:
        q = q.where(u.c.ts >= query.start)
    if query.end is not None:
        q = q.where(u.c.ts < query.end)
    if query.run_id is not None:
        q = q.where(u.c.run_id == query.run_id)
    return q


def _sums() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.sum(case((u.c.status >= 400, 1), else_=0)).label("errors"),
        func.sum(u.c.tokens_in).label("tokens_in"),
        func.sum(u.c.tokens_out).label("tokens_out"),
        func.sum(u.c.cost_usd).label("cost_usd"),
        func.max(u.c.key_name).label("key_name"),
    ]


def _day(index: int | None) -> str | None:
    return None if index is None else datetime.fromtimestamp(int(index) * DAY_S, tz=UTC).strftime("%Y-%m-%d")


def _row(group_by: Sequence[str], keys: Sequence[Any], sums: Any, pct: dict[str, float | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g, v in zip(group_by, keys, strict=True):
        if g == "key":
            out["key_id"] = v
            out["key_name"] = sums.key_name
        elif g == "day":
            out["day"] = _day(v)
        else:
            out[g] = v
    out.update(
        requests=int(sums.requests),
        errors=int(sums.errors or 0),
        tokens_in=int(sums.tokens_in or 0),
        tokens_out=int(sums.tokens_out or 0),
        cost_usd=round(float(sums.cost_usd or 0.0), 9),
    )
    out.update({k: None if v is None else round(float(v), 6) for k, v in pct.items()})
    return out


async def usage(engine: AsyncEngine, query: UsageQuery) -> dict[str, Any]:
    """One page of grouped usage: ``{"data": [...], "has_more": bool, "next_offset": int | None}``."""
    groups = _group_columns(query.group_by)
    order: list[ColumnElement[Any]] = [literal_column(str(i + 1)) for i in range(len(groups))]
    q = _filtered(select(*groups, *_sums()), query).group_by(*groups).order_by(*order)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        q = q.add_columns(
            *(
                func.percentile_cont(p).within_group(col).label(f"{name}_p{int(p * 100)}_s")
                for name, col in (("ttft", u.c.ttft_s), ("latency", u.c.latency_s))
                for p in (0.5, 0.95)
            )
        )
    q = q.limit(query.limit + 1).offset(query.offset)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        pcts = [] if postgres else await _python_percentiles(conn, query, rows)
    n = len(query.group_by)
    data = []
    for i, r in enumerate(rows):
        if postgres:
            pct = {k: getattr(r, k) for k in ("ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s")}
        else:
            pct = pcts[i]
        data.append(_row(query.group_by, tuple(r)[:n], r, pct))
    return {
        "object": "list",
        "group_by": list(query.group_by),
        "data": data,
        "has_more": more,
        "next_offset": query.offset + len(data) if more else None,
    }


async def _python_percentiles(conn: Any, query: UsageQuery, rows: Sequence[Any]) -> list[dict[str, float | None]]:
    """SQLite has no percentile_cont: read the page's groups' TTFT and latency values and compute them here."""
    groups = _group_columns(query.group_by)
    n = len(groups)
    wanted = {tuple(r)[:n] for r in rows}
    values: dict[tuple[Any, ...], tuple[list[float], list[float]]] = {k: ([], []) for k in wanted}
    result = await conn.stream(_filtered(select(*groups, u.c.ttft_s, u.c.latency_s), query))
    async for r in result:
        bucket = values.get(tuple(r)[:n])
        if bucket is not None:
            if r.ttft_s is not None:
                bucket[0].append(r.ttft_s)
            if r.latency_s is not None:
                bucket[1].append(r.latency_s)
    out = []
    for r in rows:
        ttft, latency = values[tuple(r)[:n]]
        out.append(
            {
                "ttft_p50_s": percentile(ttft, 0.5),
                "ttft_p95_s": percentile(ttft, 0.95),
                "latency_p50_s": percentile(latency, 0.5),
                "latency_p95_s": percentile(latency, 0.95),
            }
        )
    return out
