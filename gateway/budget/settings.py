"""A dollar budget: what a key or a consumer may spend per UTC day and per UTC calendar month."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    usd_per_day: float | None = Field(default=None, gt=0, description="USD per UTC day")
    usd_per_month: float | None = Field(default=None, gt=0, description="USD per UTC calendar month")

    @property
    def unlimited(self) -> bool:
        return self.usd_per_day is None and self.usd_per_month is None
