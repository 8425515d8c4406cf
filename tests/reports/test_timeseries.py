"""Time buckets: empty buckets are gaps, not 100 % good."""

from __future__ import annotations

import polars as pl
import pytest

from reports.load import from_lines
from reports.slo import SloSpec
from reports.timeseries import bucket_series, bucket_width, provider_share
from tests.reports.factory import T0, attempt, lines, rec


def _requests() -> pl.DataFrame:
    out = [rec(f"a{i}", i + 0.5, "ok") for i in range(10)]  # bucket 0
    out += [rec(f"b{i}", 30 + i + 0.5, "error" if i < 5 else "ok", provider="vllm") for i in range(10)]  # bucket 3
    return from_lines(lines(out), meta={"started_at": T0}).requests


def test_empty_buckets_are_gaps() -> None:
    b = bucket_series(_requests(), SloSpec(availability=0.9), duration_s=60, bucket_s=10, t0=T0)
    assert b["bucket"].to_list() == [0, 1, 2, 3, 4, 5]
    assert b["requests"].to_list() == [10, 0, 0, 10, 0, 0]
    assert b["availability"].to_list() == [1.0, None, None, 0.5, None, None]
    assert b["burn_availability"].to_list()[:4] == [0.0, None, None, pytest.approx(5.0)]
    assert b["budget_consumed_cum"].to_list()[-1] == pytest.approx(5 / (20 * 0.1))
    assert b["bucket_start"][1].timestamp() == pytest.approx(T0 + 10)


def test_provider_share_fills_empty_buckets() -> None:
    s = provider_share(_requests(), duration_s=40, bucket_s=10)
    openai = s.filter(s["provider"] == "openai")
    assert openai["served"].to_list() == [10, 0, 0, 0]
    assert openai["share"].to_list() == [1.0, None, None, 0.0]


@pytest.mark.parametrize(("duration", "step"), [(60, 1.0), (180, 2.0), (600, 10.0), (3600, 60.0)])
def test_bucket_width(duration: float, step: float) -> None:
    assert bucket_width(duration) == step


def test_upstream_calls_per_bucket_skip_breaker_open_and_fill_empty_buckets() -> None:
    recs = [
        rec("a", 1, "ok", attempts=[attempt("openai", 1, "server_error", 503), attempt("vllm", 1.2)]),
        rec("b", 2, "ok", provider="vllm", attempts=[attempt("openai", 2, "breaker_open", None), attempt("vllm", 2)]),
        rec("c", 25, "ok"),
    ]
    run = from_lines(lines(recs), meta={"started_at": T0})
    b = bucket_series(run.requests, SloSpec(), duration_s=30, bucket_s=10, t0=T0, attempts=run.attempts)
    assert b["upstream_calls"].to_list() == [3, 0, 1]
    assert b["upstream_failed"].to_list() == [1, 0, 0]
