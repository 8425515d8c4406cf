"""Database configuration: where the system of record lives and how its writers behave."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UsageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_max: int = Field(
        default=50_000, ge=1, description="usage records waiting for the database; beyond it new ones are dropped"
    )
    batch_max: int = Field(default=500, ge=1, description="records written in one INSERT")
    flush_interval_s: float = Field(default=1.0, gt=0, description="a partial batch waits at most this long")
    retry_s: float = Field(default=2.0, gt=0, description="after a failed write, wait this long before the next")


class KeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="every replica reads the key changes at least this often (an announcement on Redis makes it "
        "sooner); with the read itself, a change is in force everywhere within 2 s at the default",
    )
    channel: str = Field(default="faultline:keys", description="Redis pub/sub channel of key changes")


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="postgresql://user@host/db or sqlite:///path.db; overridden by $DATABASE_URL; none = no "
        "database (keys only from this file, no usage records)",
    )
    migrate_on_start: bool = Field(default=True, description="apply the schema migrations when the gateway starts")
    pool_size: int = Field(default=5, ge=1, description="connections per replica (PostgreSQL)")
    timeout_s: float = Field(default=5.0, gt=0, description="bound on one statement; the database is off the hot path")
    usage: UsageSettings = UsageSettings()
    keys: KeySettings = KeySettings()
