"""Response-cache configuration: off unless model groups opt in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(default=[], description="model groups (names) whose answers are cached; none = off")
    scope: Literal["consumer", "shared"] = Field(
        default="consumer", description="consumer: each consumer its own entries; shared: one cache for all"
    )
    ttl_s: float = Field(default=3600.0, gt=0, description="an entry is served this long after it was stored")
    max_entries: int = Field(default=10_000, ge=1, description="per scope; the oldest entries are evicted beyond it")
    max_entry_bytes: int = Field(default=262_144, ge=1024, description="a larger answer is not stored")
