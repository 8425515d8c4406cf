"""Usage analytics: grouped sums and percentiles, the same on PostgreSQL and SQLite, paged."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.schema import usage_records
from gateway.requestrecord import RequestRecord
from gateway.usage.query import UsageQuery, percentile, usage
from gateway.usage.writer import row_of

DAY = 86_400.0
T0 = 20_000 * DAY  # 2024-10-04T00:00:00Z


def rec(
    i: int, key: str, ts: float, *, status: int = 200, ttft: float = 0.1, latency: float = 1.0
) -> dict[str, object]:
    r = RequestRecord(request_id=f"r{i}", ts_arrival=ts, consumer=f"c-{key}", model="m", provider="p", status=status)
    r.key_id, r.key_name = key, f"name-{key}"
    r.tokens_in, r.tokens_out, r.cost_usd = 10, 2 * i, 0.001 * i
    r.ts_first_byte, r.ts_end = ts + ttft, ts + latency
    return row_of(r)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(database_url)
    await upgrade(e)
    rows = [rec(i, "a", T0 + i, ttft=0.1 * i, latency=float(i)) for i in range(1, 6)]
    rows += [rec(10, "b", T0 + DAY + 5, status=429), rec(11, "b", T0 + 2 * DAY)]
    async with e.begin() as conn:
        await conn.execute(insert(usage_records), rows)
    yield e
    await e.dispose()


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, None), ([3.0], 0.95, 3.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5), ([1.0, 2.0, 3.0, 4.0, 5.0], 0.95, 4.8)],
)
def test_percentile_is_percentile_cont(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


async def test_usage_by_key(engine: AsyncEngine) -> None:
    page = await usage(engine, UsageQuery(group_by=("key",)))
    a, b = page["data"]
    assert (a["key_id"], a["key_name"], a["requests"], a["errors"], a["tokens_in"], a["tokens_out"]) == (
        "a",
        "name-a",
        5,
        0,
        50,
        30,
    )
    assert a["cost_usd"] == pytest.approx(0.015)
    assert (a["ttft_p50_s"], a["ttft_p95_s"]) == (pytest.approx(0.3), pytest.approx(0.48))
    assert (a["latency_p50_s"], a["latency_p95_s"]) == (3.0, pytest.approx(4.8))
    assert (b["requests"], b["errors"]) == (2, 1)
    assert page["has_more"] is False


async def test_usage_by_key_and_day_within_a_range(engine: AsyncEngine) -> None:
    page = await usage(engine, UsageQuery(group_by=("key", "day"), start=T0 + DAY, end=T0 + 3 * DAY))
    assert [(r["key_id"], r["day"], r["requests"]) for r in page["data"]] == [
        ("b", "2024-10-05", 1),
        ("b", "2024-10-06", 1),
    ]


async def test_usage_is_paged(engine: AsyncEngine) -> None:
    first = await usage(engine, UsageQuery(group_by=("key", "day"), limit=2))
    assert first["has_more"] is True and first["next_offset"] == 2
    rest = await usage(engine, UsageQuery(group_by=("key", "day"), limit=2, offset=2))
    assert rest["has_more"] is False
    assert [r["day"] for r in first["data"] + rest["data"]] == ["2024-10-04", "2024-10-05", "2024-10-06"]
