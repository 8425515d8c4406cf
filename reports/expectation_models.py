"""The expectation vocabulary: one pydantic model per ``kind`` (a discriminated union).

Common optional fields: ``window: [start_s, end_s]`` keeps requests arriving in ``[start_s, end_s)`` (run
seconds); ``consumer`` / ``provider`` keep that consumer's requests / requests served by that provider. Every
model forbids unknown fields, so a typo is an error naming the field. See docs/REPORTS.md for the table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

Outcome = Literal["ok", "error", "shed", "quota_rejected", "client_error", "cancelled"]
SloName = Literal["availability", "ttft_p95", "e2e_p99"]
RuleName = Literal["14.4x 1h/5m", "6x 6h/30m"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str | None = Field(default=None, description="free text shown next to the result")

    def scope(self) -> str:
        parts = []
        for name in ("consumer", "provider"):
            value = getattr(self, name, None)
            if value is not None and name not in type(self).scoped_by_default():
                parts.append(f"{name} {value}")
        window = getattr(self, "window", None)
        if window is not None:
            parts.append(f"t in [{window[0]:g}, {window[1]:g}) s")
        return f" ({', '.join(parts)})" if parts else ""

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ()


class _Windowed(_Base):
    window: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _window_order(self) -> _Windowed:
        if self.window is not None and not (0 <= self.window[0] < self.window[1]):
            raise ValueError("window must be [start_s, end_s] with 0 <= start_s < end_s")
        return self


class _Filtered(_Windowed):
    consumer: str | None = None
    provider: str | None = None


class BreakerOpensWithin(_Base):
    kind: Literal["breaker_opens_within"]
    provider: str
    after_s: float = Field(default=0.0, ge=0, description="usually the fault start")
    within_s: float = Field(gt=0)

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ("provider",)


class BreakerStaysClosed(_Base):
    kind: Literal["breaker_stays_closed"]
    provider: str

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ("provider",)


class NoRequestsWhileBreakerOpen(_Base):
    kind: Literal["no_requests_while_breaker_open"]
    provider: str
    grace_s: float = Field(default=0.0, ge=0, description="ignore calls this soon after the breaker opened")
    max_calls: int = Field(default=0, ge=0)

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ("provider",)


class MinBreakerTransitions(_Base):
    kind: Literal["min_breaker_transitions"]
    provider: str
    to: Literal["open", "half_open", "closed"]
    value: int = Field(ge=1)

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ("provider",)


class MaxUpstreamCallsPerRequest(_Filtered):
    kind: Literal["max_upstream_calls_per_request"]
    value: float = Field(gt=0)


class MaxUpstreamCallsPerLogicalRequest(_Filtered):
    """Upstream calls per logical request: a client's request and its retries (request ids ``<id>-<attempt>``)
    count once."""

    kind: Literal["max_upstream_calls_per_logical_request"]
    value: float = Field(gt=0)


class MinAvailability(_Filtered):
    kind: Literal["min_availability"]
    value: float = Field(ge=0, le=1)


class MaxTtftP95(_Filtered):
    kind: Literal["max_ttft_p95_s"]
    value: float = Field(gt=0)


class MaxE2eP99(_Filtered):
    kind: Literal["max_e2e_p99_s"]
    value: float = Field(gt=0)


class MaxLatency(_Filtered):
    kind: Literal["max_latency_s"]
    metric: Literal["ttft", "e2e"]
    quantile: float = Field(gt=0, lt=1)
    value: float = Field(gt=0)


class MinFailoverShare(_Filtered):
    kind: Literal["min_failover_share"]
    value: float = Field(ge=0, le=1)


class MinProviderShare(_Windowed):
    kind: Literal["min_provider_share"]
    provider: str
    value: float = Field(ge=0, le=1, description="share of the good requests served by the provider")

    @classmethod
    def scoped_by_default(cls) -> tuple[str, ...]:
        return ("provider",)


class MaxErrorBudgetConsumed(_Base):
    kind: Literal["max_error_budget_consumed"]
    slo: SloName = "availability"
    value: float = Field(ge=0)


class OutcomeCount(_Filtered):
    kind: Literal["outcome_count"]
    outcome: Outcome
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> OutcomeCount:
        if self.min is None and self.max is None:
            raise ValueError("outcome_count needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must be <= max")
        return self


class MaxSpendUsd(_Filtered):
    kind: Literal["max_spend_usd"]
    value: float = Field(ge=0, description="the requests' summed cost_usd stays at or below this")


class AlertFiresWithin(_Base):
    kind: Literal["alert_fires_within"]
    within_s: float = Field(gt=0, description="after the first fault starts (run seconds)")
    slo: SloName = "availability"
    rule: RuleName | None = Field(default=None, description="none = whichever rule fires first")


class NoAlertFires(_Base):
    kind: Literal["no_alert_fires"]
    slo: SloName = "availability"
    rule: RuleName | None = None


Expectation = Annotated[
    BreakerOpensWithin
    | BreakerStaysClosed
    | NoRequestsWhileBreakerOpen
    | MinBreakerTransitions
    | MaxUpstreamCallsPerRequest
    | MaxUpstreamCallsPerLogicalRequest
    | MinAvailability
    | MaxTtftP95
    | MaxE2eP99
    | MaxLatency
    | MinFailoverShare
    | MinProviderShare
    | MaxErrorBudgetConsumed
    | OutcomeCount
    | MaxSpendUsd
    | AlertFiresWithin
    | NoAlertFires,
    Field(discriminator="kind"),
]
EXPECTATION_LIST: TypeAdapter[list[Expectation]] = TypeAdapter(list[Expectation])


class ExpectationError(ValueError):
    """The scenario's expectations do not validate; the message lists each problem on its own line."""


def parse_expectations(raw: Any) -> list[Expectation]:
    """Validate a scenario's ``expectations:`` list; raise :class:`ExpectationError` with readable lines."""
    try:
        return EXPECTATION_LIST.validate_python(raw or [])
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"]
            where = f"expectations[{loc[0]}]" if loc else "expectations"
            rest = ".".join(str(p) for p in loc[2:]) if len(loc) > 2 else ""
            kind = loc[1] if len(loc) > 1 else ""
            lines.append(f"{where}{f' ({kind})' if kind else ''}{f' {rest}' if rest else ''}: {err['msg']}")
        raise ExpectationError("invalid expectations:\n  " + "\n  ".join(lines)) from None
