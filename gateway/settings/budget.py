"""A dollar budget: what a key or a consumer may spend per UTC day and per UTC calendar month."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    usd_per_day: float | None = Field(default=None, gt=0, description="USD per UTC day")
    usd_per_month: float | None = Field(default=None, gt=0, description="USD per UTC calendar month")

    @property
    def unlimited(self) -> bool:
        return self.usd_per_day is None and self.usd_per_month is None


class BudgetSettings(BaseModel):
    """How the dollar budgets use the state store (their keys share ``quota.key_prefix``)."""

    model_config = ConfigDict(extra="forbid")

    max_store_calls: int = Field(
        default=32, ge=1, description="budget calls in flight at once per replica; more wait outside the bound"
    )
    failure_policy: Literal["open", "closed"] = Field(
        default="closed",
        description="the state store failing: closed = a budgeted request is refused with 503 (a dollar cap "
        "stays a cap); open = it goes on unchecked",
    )
