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
from gateway.router.breaker import Transition


class RouterEvents(
    BreakerEvents, RetryEvents, SheddingEvents, ChaosEvents, GuardrailEvents, StateStoreEvents, Protocol
):
    pass


class BreakerEventsListener:
    """Forwards breaker transitions to observability (log line and metrics), labelled by provider."""

    def __init__(self, events: RouterEvents) -> None:
        self._events = events

    def on_transition(self, event: Transition) -> None:
        provider = event.key.split("/", 1)[0]
        self._events.breaker_transition(provider, str(event.from_state), str(event.to_state), event.reason)
