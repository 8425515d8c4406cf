"""State-store configuration: where Redis is, the one bound of every call to it, and when it counts as down."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = Field(default=None, description="overridden by $REDIS_URL; none = embedded fakeredis")
    timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="bound of every call to the state store on a request's path (quota, breaker fetch and "
        "publish), counted from the moment the command is sent",
    )
    lag_allowance_s: float = Field(
        default=1.0,
        gt=0,
        description="a call whose bound passes while the event loop itself is behind is given up to this long in "
        "all before it counts as a failure (the store's answer may be waiting to be read)",
    )
    outage_after_failures: int = Field(
        default=3, ge=1, description="consecutive failed round trips before the store is declared down"
    )
    probe_interval_s: float = Field(
        default=0.5, gt=0, description="while the store is down, time between probes (PING, on their own task)"
    )
