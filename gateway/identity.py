"""Who a presented key is: a key of the configuration file or a virtual key of the database.

Kept apart from gateway/keys/ so that a :class:`gateway.call.Call` can carry an identity without the call
depending on the key directory (whose admin handlers take calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config import Consumer
from gateway.settings.budget import Budget


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a presented key is: the consumer (limits, permissions, allowlist, budget) and the key itself."""

    consumer: Consumer
    key_id: str
    key_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    expires_at: float | None = None
    key_budget: Budget | None = None  # the key's own budget (a configured key's budget is its consumer's)


def config_identity(c: Consumer) -> Identity:
    """The identity of a key from the configuration file: id ``cfg:<consumer>``, named after the consumer."""
    return Identity(consumer=c, key_id=f"cfg:{c.name}", key_name=c.name)
