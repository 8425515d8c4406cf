"""What a virtual key is, as the admin API takes it (:class:`KeyCreate`, :class:`KeyPatch`) and shows it
(:func:`public`). The secret is never stored or shown again after creation: only its SHA-256 and a hint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.settings.budget import Budget
from gateway.settings.quota import Limits

NAME = r"^[A-Za-z0-9._-]{1,64}$"
Permission = Literal["chat", "pin", "models", "served_by"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyFields(_Body):
    """The fields a key has besides its name; every one optional in a PATCH."""

    consumer: str | None = Field(default=None, pattern=NAME, description="default: the key's own id")
    tier: str | None = Field(default=None, description="one of the configured tiers")
    limits: Limits | None = Field(default=None, description="the key's own limits, instead of its tier's")
    models: list[str] | None = Field(default=None, max_length=256, description="allowlist; none = every model")
    budget: Budget | None = None
    priority: int = Field(default=1, ge=0, le=9)
    permissions: list[Permission] = Field(default_factory=lambda: list[Permission](("chat", "models")))
    expires_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with a time zone")
    tags: dict[str, str] = Field(default_factory=dict, max_length=32)


class KeyCreate(KeyFields):
    name: str = Field(min_length=1, max_length=128)


class KeyPatch(_Body):
    """Only the fields present change; ``null`` clears a field that may be empty."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    tier: str | None = None
    limits: Limits | None = None
    models: list[str] | None = Field(default=None, max_length=256)
    budget: Budget | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    permissions: list[Permission] | None = None
    expires_at: AwareDatetime | None = None
    tags: dict[str, str] | None = Field(default=None, max_length=32)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def public(row: Any, *, now: float) -> dict[str, Any]:
    """A key as the admin API shows it (a database row). Never the secret, never its hash."""
    status = "active"
    if row.revoked_at is not None:
        status = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    budget = None
    if row.usd_per_day is not None or row.usd_per_month is not None:
        budget = {"usd_per_day": row.usd_per_day, "usd_per_month": row.usd_per_month}
    return {
        "id": row.id,
        "object": "key",
        "name": row.name,
        "key_hint": row.key_hint,
        "consumer": row.consumer,
        "tier": row.tier,
        "limits": row.limits,
        "models": row.models,
        "budget": budget,
        "priority": row.priority,
        "permissions": row.permissions,
        "expires_at": iso(row.expires_at),
        "tags": row.tags,
        "status": status,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "revoked_at": iso(row.revoked_at),
    }
