"""Quota configuration: limits per tier and consumer, and the state-store failure policy."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """A consumer's limits. ``None`` means unlimited on that axis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens (prompt + completion) per minute")
    tpd: int | None = Field(default=None, ge=1, description="tokens per day (UTC day)")
    max_concurrency: int | None = Field(default=None, ge=1, description="requests in flight at once")

    @property
    def unlimited(self) -> bool:
        """No limit on any axis: the quota stage does nothing for this consumer."""
        return self.rpm is None and self.tpm is None and self.tpd is None and self.max_concurrency is None


class QuotaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_prefix: str = "faultline"
    failure_policy: Literal["open", "closed"] = "open"
    replicas: int = Field(default=1, ge=1, description="gateway replicas sharing the limits (fail-open share)")
    default_max_tokens: int = Field(default=256, ge=1, description="completion estimate when none is given")
    lease_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="an in-flight lease (concurrency slot + open token reservation) expires after this; "
        "bounds what a crashed replica can hold",
    )
    max_store_calls: int = Field(
        default=32,
        ge=1,
        description="quota calls to the state store in flight at once per replica; more wait their turn "
        "(outside state.timeout_s, which bounds only the round trip)",
    )
    max_unsettled: int = Field(
        default=10_000,
        ge=0,
        description="settles kept for replay while the state store is unreachable; beyond it the oldest is "
        "dropped and its estimate stands",
    )
    chars_per_token: float = Field(default=4.0, gt=0, description="prompt estimate: characters per token")
    message_overhead_tokens: int = Field(default=4, ge=0, description="prompt estimate: tokens added per message")
