"""SLO specs, SLI definitions and the per-dimension SLI tables.

Request classes (from ``outcome``):
- good: ``ok``;
- bad: ``error``, ``shed`` and any unknown outcome (shedding is a failure of the service);
- excluded from the valid population: ``client_error`` (4xx caused by the client), ``quota_rejected`` (a consumer
  over its own limit: expected behaviour, reported apart) and ``cancelled`` (the client went away).

Availability = good / valid. Latency SLIs count only good requests: TTFT over streamed good requests
(``ts_first_byte - ts_arrival``), end-to-end over all good requests (``ts_end - ts_arrival``). Each SLO is also
read as a ratio SLI so it has an error budget: for ``ttft_p95_s: 2.0`` a good event is a TTFT <= 2.0 s and the
objective is 95 %. Quantiles use linear interpolation between closest ranks (NumPy's default, Hyndman-Fan
type 7): ``QUANTILE_METHOD``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reports.summary_models import SloRow

QUANTILE_METHOD: Final = "linear"
QUANTILES = (0.5, 0.95, 0.99)
EXCLUDED = ("client_error", "quota_rejected", "cancelled")


class SloSpec(BaseModel):
    """The ``slo:`` block of a scenario."""

    model_config = ConfigDict(extra="forbid")

    availability: float = Field(default=0.995, gt=0, lt=1, description="objective: good / valid requests")
    ttft_p95_s: float | None = Field(default=None, gt=0, description="p95 time to first token, streamed requests")
    e2e_p99_s: float | None = Field(default=None, gt=0, description="p99 end-to-end latency, good requests")
    period_days: float = Field(default=30, gt=0, description="the SLO period the alert rules assume")
    alert_scaling: Literal["long_window", "period"] = Field(
        default="long_window",
        description="long_window: the 6 h alert window spans the run; period: the SLO period spans the run",
    )
    alert_time_compression: float | None = Field(
        default=None, gt=0, description="explicit real seconds per run second; overrides alert_scaling"
    )


SLO_NAMES = ("availability", "ttft_p95", "e2e_p99")
SloName = Literal["availability", "ttft_p95", "e2e_p99"]


class SloGate(BaseModel):
    """The ``slo_gate:`` block of a scenario: what ``make slo-check`` allows it (docs/REPORTS.md).

    ``allowed_burn_pct``: per SLO, the share of its error budget the run may use, in percent (default 100: the
    SLO must hold). A scenario that breaks an SLO on purpose declares how much it may burn and says why in
    ``reason``. ``tolerances``: per tracked figure, an absolute regression tolerance overriding the default.
    """

    model_config = ConfigDict(extra="forbid")

    allowed_burn_pct: dict[SloName, float] = Field(
        default_factory=dict, description="percent of each SLO's error budget the run may use; default 100"
    )
    reason: str | None = Field(default=None, min_length=10, description="why an SLO is allowed to break")
    tolerances: dict[str, float] = Field(
        default_factory=dict, description="per-figure absolute tolerance of the regression check"
    )

    @model_validator(mode="after")
    def _reasoned(self) -> SloGate:
        bad = sorted(k for k, v in self.allowed_burn_pct.items() if v < 0)
        if bad:
            raise ValueError(f"allowed_burn_pct: must be >= 0 ({', '.join(bad)})")
        if any(v > 100 for v in self.allowed_burn_pct.values()) and not self.reason:
            raise ValueError("allowed_burn_pct above 100 breaks the SLO on purpose: say why in `reason`")
        return self

    def allowed(self, slo: str) -> float:
        return next((pct for name, pct in self.allowed_burn_pct.items() if name == slo), 100.0)


@dataclass(frozen=True)
class Sli:
    name: str  # availability | ttft_p95 | e2e_p99
    objective: float  # the target share of good events
    threshold_s: float | None  # latency SLIs only
    title: str


def slis(spec: SloSpec) -> list[Sli]:
    out = [Sli("availability", spec.availability, None, "Availability (good / valid)")]
    if spec.ttft_p95_s is not None:
        out.append(Sli("ttft_p95", 0.95, spec.ttft_p95_s, f"TTFT p95 <= {spec.ttft_p95_s:g} s"))
    if spec.e2e_p99_s is not None:
        out.append(Sli("e2e_p99", 0.99, spec.e2e_p99_s, f"End-to-end p99 <= {spec.e2e_p99_s:g} s"))
    return out


VALID = ~pl.col("outcome").is_in(EXCLUDED)
GOOD = pl.col("outcome") == "ok"
TTFT_POP = GOOD & pl.col("stream") & pl.col("ttft_s").is_not_null()
E2E_POP = GOOD & pl.col("e2e_s").is_not_null()


def sli_events(requests: pl.DataFrame, sli: Sli) -> pl.DataFrame:
    """The SLI's events: the requests in its population, with a boolean ``good`` column."""
    if sli.name == "availability":
        return requests.filter(VALID).with_columns(good=GOOD)
    if sli.name == "ttft_p95":
        return requests.filter(TTFT_POP).with_columns(good=pl.col("ttft_s") <= sli.threshold_s)
    return requests.filter(E2E_POP).with_columns(good=pl.col("e2e_s") <= sli.threshold_s)


def _q(col: str, pop: pl.Expr, q: float) -> pl.Expr:
    return pl.col(col).filter(pop).quantile(q, interpolation=QUANTILE_METHOD)


def sli_aggs() -> list[pl.Expr]:
    """Aggregations shared by the overall, per-group and per-bucket tables."""
    aggs = [
        pl.len().alias("requests"),
        VALID.sum().alias("valid"),
        GOOD.sum().alias("good"),
        (VALID & ~GOOD).sum().alias("bad"),
        (pl.col("outcome") == "error").sum().alias("errors"),
        (pl.col("outcome") == "shed").sum().alias("shed"),
        (pl.col("outcome") == "quota_rejected").sum().alias("quota_rejected"),
        (pl.col("outcome") == "client_error").sum().alias("client_error"),
        (pl.col("outcome") == "cancelled").sum().alias("cancelled"),
    ]
    aggs += [_q("ttft_s", TTFT_POP, q).alias(f"ttft_p{round(q * 100)}") for q in QUANTILES]
    aggs += [_q("e2e_s", E2E_POP, q).alias(f"e2e_p{round(q * 100)}") for q in QUANTILES]
    aggs += [
        pl.col("tokens_in").sum().alias("tokens_in"),
        pl.col("tokens_out").sum().alias("tokens_out"),
        pl.col("cost_usd").sum().alias("cost_usd"),
    ]
    return aggs


def with_availability(df: pl.DataFrame) -> pl.DataFrame:
    """``availability`` = good / valid; null (a gap) where nothing valid happened."""
    return df.with_columns(
        availability=pl.when(pl.col("valid") > 0).then(pl.col("good") / pl.col("valid")).otherwise(None)
    )


def overall_table(requests: pl.DataFrame) -> pl.DataFrame:
    return with_availability(requests.select(sli_aggs()))


def group_table(requests: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per-``by`` SLI table (consumer, provider or model); a missing key shows as ``(none)``."""
    return with_availability(
        requests.with_columns(pl.col(by).fill_null("(none)")).group_by(by).agg(sli_aggs()).sort(by)
    )


def slo_results(requests: pl.DataFrame, spec: SloSpec) -> list[SloRow]:
    """One row per SLO: target, achieved, events, bad events, error budget consumed, verdict."""
    overall = overall_table(requests).row(0, named=True)
    rows: list[SloRow] = []
    for sli in slis(spec):
        ev = sli_events(requests, sli)
        n = ev.height
        bad = int(n - ev["good"].sum()) if n else 0
        ratio = (n - bad) / n if n else None
        consumed = (bad / n) / (1 - sli.objective) if n else None
        achieved: float | None
        target: float | None
        if sli.name == "availability":
            achieved, target = ratio, sli.objective
            met = ratio is None or ratio >= target
        else:
            col = "ttft_p95" if sli.name == "ttft_p95" else "e2e_p99"
            achieved, target = overall[col], sli.threshold_s
            met = achieved is None or target is None or achieved <= target
        rows.append(
            {
                "slo": sli.name,
                "title": sli.title,
                "objective": sli.objective,
                "threshold_s": sli.threshold_s,
                "target": target,
                "achieved": achieved,
                "good_ratio": ratio,
                "events": n,
                "bad_events": bad,
                "error_budget_consumed": consumed,
                "error_budget_used_pct": None if consumed is None else 100 * consumed,
                "verdict": "met" if met else "broken",
            }
        )
    return rows
