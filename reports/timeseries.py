"""Per-time-bucket series: traffic, availability, latency percentiles, burn rates, provider share.

Requests are bucketed by arrival time ``t`` (seconds since the run's origin) into fixed buckets
``[k * bucket_s, (k + 1) * bucket_s)``. polars' ``group_by_dynamic`` skips empty windows, so every series is
left-joined onto the full range of bucket indices (0 .. last bucket of the run); a bucket with no valid request
is a gap (``availability`` and burn rates null), never 100 % good.
"""

from __future__ import annotations

import math

import polars as pl

from reports.load import NOT_A_CALL
from reports.slo import GOOD, VALID, SloSpec, sli_aggs, sli_events, slis, with_availability

NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
COUNT_COLUMNS = (
    "requests",
    "valid",
    "good",
    "bad",
    "errors",
    "shed",
    "quota_rejected",
    "client_error",
    "cancelled",
    "tokens_in",
    "tokens_out",
    "cost_usd",
)


def bucket_width(duration_s: float, target_buckets: int = 90) -> float:
    """The smallest nice step giving at most ``target_buckets`` buckets over the run."""
    for step in NICE_STEPS:
        if duration_s / step <= target_buckets:
            return float(step)
    return float(NICE_STEPS[-1])


def bucket_range(n_buckets: int, bucket_s: float, t0: float) -> pl.DataFrame:
    """The full range of buckets: index, start (run seconds) and start (UTC datetime)."""
    idx = pl.int_range(0, n_buckets, eager=True, dtype=pl.Int64).alias("bucket")
    return pl.DataFrame(idx).with_columns(
        t_start=pl.col("bucket") * bucket_s,
        bucket_start=pl.from_epoch(
            ((pl.col("bucket") * bucket_s + t0) * 1_000_000).round().cast(pl.Int64), time_unit="us"
        ),
    )


def n_buckets(requests: pl.DataFrame, duration_s: float, bucket_s: float) -> int:
    # Ignored on the next line: polars types min()/max() as any literal
    last = float(requests["t"].max()) if requests.height else 0.0  # type: ignore[arg-type]
    return max(1, math.ceil(max(duration_s, last + 1e-9) / bucket_s))


def _bucketed(df: pl.DataFrame, bucket_s: float) -> pl.DataFrame:
    return df.with_columns(bucket=(pl.col("t") / bucket_s).floor().cast(pl.Int64))


def bucket_series(
    requests: pl.DataFrame,
    spec: SloSpec,
    duration_s: float,
    bucket_s: float,
    t0: float = 0.0,
    attempts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per bucket over the whole run, gaps included.

    Columns: bucket, t_start, bucket_start, the counts of ``reports.slo.sli_aggs`` (0 in empty buckets),
    ``upstream_calls`` / ``upstream_failed`` (when ``attempts`` is given, see :func:`call_series`),
    latency percentiles, ``availability``, ``rps``, ``error_ratio``, ``burn_<slo>`` (bucket error ratio /
    (1 - objective)) and ``budget_consumed_cum`` (availability budget used so far, as a share of the run's
    whole budget: cumulative bad / (all valid x (1 - objective))).
    """
    nb = n_buckets(requests, duration_s, bucket_s)
    full = bucket_range(nb, bucket_s, t0)
    agg = _bucketed(requests, bucket_s).group_by("bucket").agg(sli_aggs())
    out = full.join(agg, on="bucket", how="left").with_columns([pl.col(c).fill_null(0) for c in COUNT_COLUMNS])
    if attempts is not None:
        out = out.join(call_series(attempts, nb, bucket_s), on="bucket", how="left")
    out = with_availability(out).with_columns(
        rps=pl.col("requests") / bucket_s,
        error_ratio=pl.when(pl.col("valid") > 0).then(pl.col("bad") / pl.col("valid")).otherwise(None),
    )
    for sli in slis(spec):
        ev = _bucketed(sli_events(requests, sli), bucket_s)
        per = ev.group_by("bucket").agg(pl.len().alias("_n"), (~pl.col("good")).sum().alias("_bad"))
        out = (
            out.join(per, on="bucket", how="left")
            .with_columns(
                pl.when(pl.col("_n") > 0)
                .then(pl.col("_bad") / pl.col("_n") / (1 - sli.objective))
                .otherwise(None)
                .alias(f"burn_{sli.name}")
            )
            .drop("_n", "_bad")
        )
    total_valid = int(requests.select(VALID.sum()).item()) if requests.height else 0
    denom = total_valid * (1 - spec.availability)
    return out.with_columns(
        budget_consumed_cum=(pl.col("bad").cum_sum() / denom) if denom > 0 else pl.lit(None, pl.Float64)
    ).sort("bucket")


def provider_share(requests: pl.DataFrame, duration_s: float, bucket_s: float) -> pl.DataFrame:
    """Good requests per bucket and serving provider, with zero rows for empty buckets (long format).

    Columns: bucket, t_start, provider, served, share (of the bucket's good requests; null when none).
    """
    nb = n_buckets(requests, duration_s, bucket_s)
    good = requests.filter(GOOD & pl.col("provider").is_not_null())
    providers = sorted(good["provider"].unique().to_list())
    if not providers:
        return pl.DataFrame(
            schema={
                "bucket": pl.Int64,
                "t_start": pl.Float64,
                "provider": pl.String,
                "served": pl.UInt32,
                "share": pl.Float64,
            }
        )
    grid = (
        bucket_range(nb, bucket_s, 0.0)
        .select("bucket", "t_start")
        .join(pl.DataFrame({"provider": providers}), how="cross")
    )
    counts = _bucketed(good, bucket_s).group_by("bucket", "provider").agg(pl.len().alias("served"))
    out = grid.join(counts, on=["bucket", "provider"], how="left").with_columns(pl.col("served").fill_null(0))
    total = pl.col("served").sum().over("bucket")
    return out.with_columns(share=pl.when(total > 0).then(pl.col("served") / total).otherwise(None)).sort(
        "bucket", "provider"
    )


def call_series(attempts: pl.DataFrame, nb: int, bucket_s: float) -> pl.DataFrame:
    """Upstream calls per bucket (by the attempt's start; ``breaker_open``/``shed`` skips are not calls).

    Columns: bucket, upstream_calls, upstream_failed (calls whose outcome is not ``ok``); 0 in empty buckets.
    """
    calls = _bucketed(attempts.filter(~pl.col("outcome").is_in(NOT_A_CALL)), bucket_s)
    per = calls.group_by("bucket").agg(
        pl.len().cast(pl.Int64).alias("upstream_calls"),
        (pl.col("outcome") != "ok").sum().cast(pl.Int64).alias("upstream_failed"),
    )
    full = pl.DataFrame(pl.int_range(0, nb, eager=True, dtype=pl.Int64).alias("bucket"))
    return full.join(per, on="bucket", how="left").with_columns(
        pl.col("upstream_calls").fill_null(0), pl.col("upstream_failed").fill_null(0)
    )
