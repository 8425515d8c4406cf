"""What the router reports as it happens (logged and counted by gateway.observability.telemetry.Telemetry)."""

from __future__ import annotations

from typing import Protocol

from gateway.observability.events import (
    BreakerEvents,
    ChaosEvents,
    GuardrailEvents,
    RetryEvents,
    SheddingEvents,
    StateStoreEvents,
)


class RouterEvents(
    BreakerEvents, RetryEvents, SheddingEvents, ChaosEvents, GuardrailEvents, StateStoreEvents, Protocol
):
    pass
