"""Idempotency-key configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IdempotencySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    ttl_s: float = Field(default=86_400.0, gt=0, description="how long a finished answer is kept for replay (24 h)")
    running_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="added to the request deadline: how long a claim outlives a replica that died mid-request",
    )
    max_response_bytes: int = Field(
        default=1_048_576, ge=1024, description="a larger answer is not kept: a retry then runs again"
    )
